package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

func newReadCmd(g *globals) *cobra.Command {
	var all, asJSON, hist bool
	cmd := &cobra.Command{
		Use:   "read [CGROUP...]",
		Short: "Flush and print the hierarchical reclaim stats of cgroups",
		Long: `Flush and print each CGROUP's hierarchical total (every CPU, every descendant).
Without CGROUP, the cgroups that have stat files are read; with --all, every
cgroup below the root (or below each CGROUP) is, after one flush per tree.

The table's RECLAIMS, DELAY, PAGES, quantiles and MAX are memory-cgroup
reclaim; LIMIT and PROACTIVE (memory.reclaim) split DELAY by cause; DIRECT is
global direct reclaim, not in DELAY; FORCED is the memory-cgroup reclaim that
the limits of the cgroup's subtree made tasks stall in, wherever they ran.
--hist draws each cgroup's latency distribution instead.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.open()
			if err != nil {
				return err
			}
			defer p.Close()
			if len(args) == 0 {
				if args, err = defaultReadArgs(g, all); err != nil {
					return err
				}
			}
			_, cgs, err := g.cgroups(args)
			if err != nil {
				return err
			}
			stats, err := reclaim.Read(p, cgs, all)
			if err != nil {
				return err
			}
			switch {
			case asJSON:
				return format.JSON(cmd.OutOrStdout(), stats)
			case hist:
				return histograms(cmd.OutOrStdout(), stats)
			}
			return format.Table(cmd.OutOrStdout(), stats)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every cgroup below the root, or below each CGROUP")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&hist, "hist", false, "draw each cgroup's reclaim latency histogram")
	cmd.MarkFlagsMutuallyExclusive("json", "hist")
	return cmd
}

// histograms draws one histogram per cgroup, a blank line between them.
func histograms(w io.Writer, stats []reclaim.Stat) error {
	for i, s := range stats {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := format.Hist(w, s); err != nil {
			return err
		}
	}
	return nil
}

// defaultReadArgs is what read covers without CGROUP arguments.
func defaultReadArgs(g *globals, all bool) ([]string, error) {
	if all {
		return []string{"/"}, nil
	}
	rels, err := pin.List(g.pinPath)
	if err != nil {
		return nil, err
	}
	if len(rels) == 0 {
		return nil, usage(errors.New("no stat files are pinned: give CGROUP arguments or --all"))
	}
	return rels, nil
}
