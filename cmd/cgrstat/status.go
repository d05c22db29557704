package main

import (
	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether cgrstat is loaded, how it flushes, map fill, lost updates, stat files and who reads the event stream",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := readout.ReadStatus(g.pinPath)
			if err != nil {
				return err
			}
			if asJSON {
				return format.StatusJSON(cmd.OutOrStdout(), st)
			}
			return format.StatusText(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
