package main

import (
	"errors"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/cgtree"
	"github.com/cgrstat/cgrstat/pkg/check"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/cgrstat/cgrstat/pkg/spec"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// Exit statuses: 0 success, 1 failure (something measured or verified went
// wrong), 2 usage or environment error (bad input, missing privilege, a
// kernel without a feature).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks an error the command itself found in its input.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usage marks err as a usage or environment error (exit status 2).
func usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// usageErrors are the library errors that ask the user to change the input
// or the environment rather than report a failure.
var usageErrors = []error{
	loader.ErrNotRoot, loader.ErrNoBTF, loader.ErrNotBPFFS, loader.ErrNotLoaded, loader.ErrBadPinPath, loader.ErrMaxCgroups,
	cgtree.ErrDiffers, cgtree.ErrBusy, cgtree.ErrPartial, cgtree.ErrNotExist, cgtree.ErrNotMade, cgtree.ErrParentMemory, cgtree.ErrNeedsV2,
	check.ErrTreeExists, check.ErrOtherMode, cgroup.ErrNotScratch, pin.ErrNoStatFile,
	events.ErrNoStream, events.ErrNoSlot,
}

// exitStatus is the exit status for err.
func exitStatus(err error) int {
	if err == nil {
		return exitOK
	}
	var (
		u       usageError
		mode    *loader.ModeError
		foreign *loader.ForeignError
		differs *loader.DiffersError
		tp      *loader.TracepointError
		budget  *stress.BudgetError
		bad     *spec.Error
	)
	if errors.As(err, &u) || errors.As(err, &mode) || errors.As(err, &foreign) || errors.As(err, &differs) || errors.As(err, &tp) ||
		errors.As(err, &budget) || errors.As(err, &bad) {
		return exitUsage
	}
	for _, target := range usageErrors {
		if errors.Is(err, target) {
			return exitUsage
		}
	}
	return exitFailure
}
