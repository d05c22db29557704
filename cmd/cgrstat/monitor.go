package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/identity"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// monitorFlags are what serve and watch share: which load, which cgroups.
type monitorFlags struct {
	load  loadFlags
	depth int
	match string
}

func (f *monitorFlags) register(cmd *cobra.Command) {
	f.load.register(cmd)
	cmd.Flags().IntVar(&f.depth, "depth", readout.DefaultDepth,
		"deepest cgroup shown, in path components below the root (/system.slice/x.service is 2); -1 for every depth")
	registerMatch(cmd, &f.match)
}

func (f *monitorFlags) filter() (readout.Filter, error) {
	return matchFilter(f.depth, f.match)
}

// registerMatch adds --match, which serve, watch and read share.
func registerMatch(cmd *cobra.Command, match *string) {
	cmd.Flags().StringVar(match, "match", "", "only cgroups whose path matches this regular expression (unanchored), or, as KEY=VALUE[,KEY=VALUE...] with KEY one of "+
		strings.Join(identity.Keys, ", ")+", whose identity matches (pod=<uid>, qos=burstable)")
}

// matchFilter is the filter of --depth and --match: a selector when
// --match is KEY=VALUE with a known key, else a regular expression.
func matchFilter(depth int, match string) (readout.Filter, error) {
	flt := readout.Filter{Depth: depth}
	if depth < -1 {
		return flt, usage(fmt.Errorf("--depth %d: want -1 (every depth) or a depth from 0", depth))
	}
	switch {
	case match == "":
	case identity.IsSelector(match):
		sel, err := identity.ParseSelector(match)
		if err != nil {
			return flt, usage(fmt.Errorf("--match: %w", err))
		}
		flt.Select = sel
	default:
		re, err := regexp.Compile(match)
		if err != nil {
			return flt, usage(fmt.Errorf("--match: %w", err))
		}
		flt.Match = re
	}
	return flt, nil
}

// session is a source over the subtree to monitor, and the load it found
// or made at the start.
type session struct {
	src    *readout.Source
	rec    *loader.Record
	loaded bool
	h      *cgroup.Hierarchy
	top    cgroup.Cgroup
}

// openSession loads the collectors unless they are loaded, and reads the
// subtree below args[0] (the root without arguments), the cgroups filter
// keeps.
func (f *monitorFlags) openSession(ctx context.Context, g *globals, args []string, filter readout.Filter) (*session, error) {
	mode, err := f.load.check()
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		args = []string{"/"}
	}
	h, cgs, err := g.cgroups(args)
	if err != nil {
		return nil, err
	}
	// Exclusive only while loading: serve and watch run for long, and hold
	// the lock shared per read (Source.Read), so that other commands run
	// between reads.
	unlock, err := readout.Lock(ctx, g.pinPath, true)
	if err != nil {
		return nil, err
	}
	p, loaded, err := readout.Ensure(f.load.options(g, h, mode))
	unlock()
	if err != nil {
		return nil, err
	}
	// No handle is kept: the source opens the load for each read, so that
	// an unload meanwhile frees it (see readout.Source).
	p.Close()
	return &session{src: readout.NewSource(g.pinPath, cgs[0], filter), rec: p.Record, loaded: loaded, h: h, top: cgs[0]}, nil
}

// close unloads the collectors if this session loaded them, and only then:
// a load someone else made at the pin path after an unload stays.
func (s *session) close() error {
	if !s.loaded {
		return nil
	}
	pinPath := s.src.PinPath()
	unlock, err := readout.Lock(context.Background(), pinPath, true)
	if err != nil {
		return err
	}
	defer unlock()
	if rec, err := loader.ReadRecord(pinPath); err != nil || !rec.Same(s.rec) {
		return nil // unloaded by someone else, perhaps loaded again: not this run's
	}
	if _, err := loader.Unload(pinPath); err != nil {
		return fmt.Errorf("unloading what this run loaded: %w", err)
	}
	return nil
}
