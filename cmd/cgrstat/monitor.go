package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/identity"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/monitor"
)

// monitorFlags are what serve and watch share: which load, which cgroups.
type monitorFlags struct {
	load  loadFlags
	depth int
	match string
}

func (f *monitorFlags) register(cmd *cobra.Command) {
	f.load.register(cmd)
	cmd.Flags().IntVar(&f.depth, "depth", monitor.DefaultDepth,
		"deepest cgroup shown, in path components below the root (/system.slice/x.service is 2); -1 for every depth")
	registerMatch(cmd, &f.match)
}

func (f *monitorFlags) filter() (monitor.Filter, error) {
	return matchFilter(f.depth, f.match)
}

// registerMatch adds --match, which serve, watch and read share.
func registerMatch(cmd *cobra.Command, match *string) {
	cmd.Flags().StringVar(match, "match", "", "only cgroups whose path matches this regular expression (unanchored), or, as KEY=VALUE[,KEY=VALUE...] with KEY one of "+
		strings.Join(identity.Keys, ", ")+", whose identity matches (pod=<uid>, qos=burstable)")
}

// matchFilter is the filter of --depth and --match: a selector when
// --match is KEY=VALUE with a known key, else a regular expression.
func matchFilter(depth int, match string) (monitor.Filter, error) {
	flt := monitor.Filter{Depth: depth}
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

// session is an open load and a source over the subtree to monitor.
type session struct {
	src    *monitor.Source
	p      *loader.Pinned
	loaded bool
}

// openSession loads the collectors unless they are loaded, and reads the
// subtree below args[0] (the root without arguments).
func (f *monitorFlags) openSession(ctx context.Context, g *globals, args []string) (*session, error) {
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
	unlock, err := loader.Lock(ctx, g.pinPath, true)
	if err != nil {
		return nil, err
	}
	p, loaded, err := loader.Ensure(f.load.options(g, h, mode))
	unlock()
	if err != nil {
		return nil, err
	}
	return &session{src: monitor.NewSource(p, cgs[0]), p: p, loaded: loaded}, nil
}

// close unloads the collectors if this session loaded them, and only then.
func (s *session) close() error {
	s.p.Close()
	if !s.loaded {
		return nil
	}
	unlock, err := loader.Lock(context.Background(), s.p.Path, true)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = loader.Unload(s.p.Path)
	if err != nil {
		return fmt.Errorf("unloading what this run loaded: %w", err)
	}
	return nil
}
