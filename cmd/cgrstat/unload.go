package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

func newUnloadCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unload",
		Short: "Remove every pin (stat files too), which detaches and frees the collectors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rec, err := loader.Unload(g.pinPath)
			if errors.Is(err, loader.ErrNotLoaded) {
				return fmt.Errorf("%w at %s: nothing to unload", err, g.pinPath)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unloaded %s: %d programs freed, no pins left\n", escape.String(g.pinPath), len(rec.ProgramIDs))
			return nil
		},
	}
}
