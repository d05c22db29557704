package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/internal/exitcode"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

const defaultPinPath = "/sys/fs/bpf/cgrstat"

// globals are the flags every command shares.
type globals struct {
	pinPath    string
	cgroupRoot string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "cgrstat",
		Short: "Memory-cgroup reclaim latency, aggregated up the cgroup tree by BPF and rstat",
		Long: `cgrstat times every memory-cgroup reclaim with BPF, keeps per-CPU readings per
cgroup, and lets rstat (or a walk of the tree) aggregate them bottom-up, so
that each cgroup's stat file shows its hierarchical total.

Typical use:
  cgrstat load
  cgrstat hierarchy create --pin
  cgrstat stress
  cgrstat read --all --json
  cgrstat unload`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.pinPath, "pin-path", defaultPinPath, "bpffs directory that holds cgrstat's pins")
	root.PersistentFlags().StringVar(&g.cgroupRoot, "cgroup-root", "", "mount point of the memory cgroup hierarchy (default: found in /proc/self/mountinfo)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.UsageErr(err) })
	ex, sh := lockExclusive, lockShared
	root.AddCommand(locking(ex, making(newLoadCmd(g))), locking(ex, newUnloadCmd(g)), locking(sh, newStatusCmd(g)),
		locking(ex, making(newPinCmd(g))), locking(ex, newUnpinCmd(g)), locking(sh, newReadCmd(g)),
		newHierarchyCmd(g), locking(sh, making(newStressCmd(g))), locking(ex, making(newCheckCmd(g))), newStressChildCmd())
	return root
}

// ranError marks an error returned by a command's RunE: everything else
// cobra returns (unknown command, bad arguments) is a usage error.
type ranError struct{ err error }

func (e ranError) Error() string { return e.err.Error() }
func (e ranError) Unwrap() error { return e.err }

func markRun(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			unlock, err := lockPinPath(cmd)
			if err != nil {
				return ranError{err}
			}
			defer unlock()
			if err := run(cmd, args); err != nil {
				return ranError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRun(sub)
	}
}

// Lock annotations: commands that change what is pinned take the pin path's
// lock exclusively, those that read it shared, so that no interleaving of
// load, unload, pin, unpin and read leaves orphans.
const (
	lockKey       = "lock"
	lockExclusive = "exclusive"
	lockShared    = "shared"
)

func locking(mode string, cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[lockKey] = mode
	return cmd
}

// lockPinPath takes the lock cmd's annotation asks for. Without root there
// is no lock to take: the command refuses on its own, in its own words.
func lockPinPath(cmd *cobra.Command) (func(), error) {
	mode := cmd.Annotations[lockKey]
	if mode == "" || os.Geteuid() != 0 {
		return func() {}, nil
	}
	pinPath, err := cmd.Root().PersistentFlags().GetString("pin-path")
	if err != nil {
		return nil, err
	}
	return loader.Lock(cmd.Context(), pinPath, mode == lockExclusive)
}

// makes marks a command that creates something, and so removes it when interrupted.
const makes = "makes"

func execute(ctx context.Context, root *cobra.Command, args []string) error {
	markRun(root)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var ran ranError
	if err != nil && !errors.As(err, &ran) {
		return exitcode.UsageErr(err)
	}
	if err != nil && errors.Is(ran.err, context.Canceled) {
		return interrupted{cleaned: cmd.Annotations[makes] != ""}
	}
	if err != nil {
		return usageIfEnvironment(ran.err)
	}
	return nil
}

// environmentErrors are the library errors that mean the user must act: exit 2.
var environmentErrors = []error{loader.ErrNotLoaded, loader.ErrNotALoad, loader.ErrBadPinPath, cgroup.ErrNotScratch}

func usageIfEnvironment(err error) error {
	for _, e := range environmentErrors {
		if errors.Is(err, e) {
			return exitcode.UsageErr(err)
		}
	}
	return err
}

// making annotates cmd as one that removes what it made when interrupted.
func making(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[makes] = "yes"
	return cmd
}

// needRoot refuses to go on without root, in one line, before anything
// fails half way with a permission error.
func needRoot() error {
	if os.Geteuid() != 0 {
		return exitcode.UsageErr(errors.New("needs root: cgrstat loads BPF programs and manages cgroups (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)"))
	}
	return nil
}

// hierarchy finds the memory cgroup hierarchy.
func (g *globals) hierarchy() (*cgroup.Hierarchy, error) {
	h, err := cgroup.Detect(g.cgroupRoot)
	return h, exitcode.UsageErr(err)
}

// open opens the pinned load.
func (g *globals) open() (*loader.Pinned, error) {
	p, err := loader.Open(g.pinPath)
	if errors.Is(err, loader.ErrNotLoaded) {
		return nil, exitcode.UsageErr(g.notLoaded())
	}
	return p, err
}

// notLoaded says how to load at the pin path the user gave.
func (g *globals) notLoaded() error {
	run := "cgrstat load"
	if g.pinPath != defaultPinPath {
		run = "cgrstat --pin-path " + shellQuote(g.pinPath) + " load"
	}
	return fmt.Errorf("%w at %s (run: %s)", loader.ErrNotLoaded, g.pinPath, run)
}

// openIfLoaded opens the load, or returns nil when nothing is loaded.
func (g *globals) openIfLoaded() (*loader.Pinned, error) {
	p, err := g.open()
	if errors.Is(err, loader.ErrNotLoaded) {
		return nil, nil
	}
	return p, err
}

// cgroups finds the memory hierarchy and resolves CGROUP arguments, all or
// nothing.
func (g *globals) cgroups(args []string) (*cgroup.Hierarchy, []cgroup.Cgroup, error) {
	h, err := g.hierarchy()
	if err != nil {
		return nil, nil, err
	}
	var cgs []cgroup.Cgroup
	for _, a := range args {
		c, err := h.Resolve(a)
		if err != nil {
			return nil, nil, exitcode.UsageErr(err)
		}
		cgs = append(cgs, c)
	}
	return h, cgs, nil
}
