package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

func newLoadCmd(g *globals) *cobra.Command {
	var lf loadFlags
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Load, attach and pin the collectors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode, err := lf.check()
			if err != nil {
				return err
			}
			h, err := g.hierarchy()
			if err != nil {
				return err
			}
			rec, err := loader.Load(lf.options(g, h, mode))
			if errors.Is(err, loader.ErrLoaded) {
				fmt.Fprintf(cmd.OutOrStdout(), "already loaded at %s (flush mode %s, up to %d cgroups)\n", escape.String(g.pinPath), rec.Flush, rec.MaxCgroups)
				return nil
			}
			if err != nil {
				return err
			}
			if err := cmd.Context().Err(); err != nil { // interrupted: undo
				_, uerr := loader.Unload(g.pinPath)
				return errors.Join(err, uerr)
			}
			printLoaded(cmd.OutOrStdout(), g.pinPath, rec)
			return nil
		},
	}
	lf.register(cmd)
	return cmd
}

func printLoaded(w io.Writer, pinPath string, rec *loader.Record) {
	fmt.Fprintf(w, "loaded at %s: flush mode %s, rstat kfuncs %s, up to %d cgroups\n", escape.String(pinPath), rec.Flush, rec.RstatKfuncs, rec.MaxCgroups)
	for _, r := range rec.Refused {
		fmt.Fprintf(w, "  %s not used: %s\n", r.Mode, r.Reason)
	}
	fmt.Fprintf(w, "  throttle after memory.high: %s\n", format.ThrottleState(rec))
	m := readout.MemoryFor(rec.MaxCgroups)
	fmt.Fprintf(w, "  maps: %s preallocated, plus %s per cgroup that reclaims and %s per cgroup throttled after memory.high (at most %s), whatever the number of CPUs\n",
		format.Bytes(m.Preallocated), format.Bytes(m.PerCgroup), format.Bytes(m.PerThrottled), format.Bytes(m.AtMost))
	if rec.Flush == loader.Walk {
		fmt.Fprintln(w, "  walk mode: a read of a stat file visits its whole subtree holding the kernel's cgroup_mutex")
	}
}
