package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/pin"
)

func newUnpinCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unpin CGROUP...|--all",
		Short: "Remove the stat files of cgroups",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usage(errors.New("give either CGROUP arguments or --all"))
			}
			if all {
				return pin.UnpinAll(g.pinPath)
			}
			h, err := g.hierarchy()
			if err != nil {
				return err
			}
			for _, a := range args {
				// The cgroup may be gone already, so its path is not resolved.
				rel, err := h.Relative(a)
				if err != nil {
					return usage(err)
				}
				if err := pin.Unpin(g.pinPath, rel); err != nil {
					return usage(err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), pin.StatFile(g.pinPath, rel))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every stat file")
	return cmd
}
