package main

import (
	"errors"

	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

func newReadCmd(g *globals) *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "read [CGROUP...]",
		Short: "Flush and print the hierarchical reclaim stats of cgroups",
		Long: `Flush and print each CGROUP's hierarchical total (every CPU, every descendant).
Without CGROUP, the cgroups that have stat files are read; with --all, every
cgroup below the root (or below each CGROUP) is, after one flush per tree.`,
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
			if asJSON {
				return format.JSON(cmd.OutOrStdout(), stats)
			}
			return format.Table(cmd.OutOrStdout(), stats)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every cgroup below the root, or below each CGROUP")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
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
