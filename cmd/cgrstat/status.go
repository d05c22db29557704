package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
)

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether cgrstat is loaded, how it flushes, map fill, lost updates and stat files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			st, err := status(g)
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

func status(g *globals) (*format.Status, error) {
	st := &format.Status{PinPath: g.pinPath, Kernel: loader.KernelRelease()}
	p, err := loader.Open(g.pinPath)
	if errors.Is(err, loader.ErrNotLoaded) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	defer p.Close()
	st.Loaded, st.Record = true, p.Record
	if st.Usage, err = p.Usage(); err != nil {
		return nil, err
	}
	st.StatFiles, err = pin.List(g.pinPath)
	return st, err
}
