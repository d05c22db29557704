package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/pin"
)

func newPinCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pin CGROUP...",
		Short: "Create a readable stat file in bpffs for each cgroup",
		Long: `Pin a cgroup iterator for each CGROUP at
<pin-path>/cgroups/<cgroup path>/vmscan.stat. Reading the file flushes and
prints the cgroup's hierarchical total:

  cg_id: <id>, total_vmscan_delay: <ns>, vmscan_count: <n>, nr_reclaimed: <pages>

CGROUP is a path relative to the cgroup root (test/a or /test/a) or an
absolute path under the cgroup mount. All or nothing: if one CGROUP cannot be
pinned, or the command is interrupted, the stat files it made are removed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cgs, err := g.cgroups(args)
			if err != nil {
				return err
			}
			p, err := g.open()
			if err != nil {
				return err
			}
			defer p.Close()
			var made, paths []string
			for _, c := range cgs {
				path, err := pin.Pin(p, c)
				if err == nil {
					made = append(made, c.Rel)
					err = cmd.Context().Err()
				}
				if err != nil { // all or nothing: unpin what this run pinned
					for _, rel := range made {
						_ = pin.Unpin(g.pinPath, rel)
					}
					return err
				}
				paths = append(paths, path)
			}
			for _, path := range paths {
				fmt.Fprintln(cmd.OutOrStdout(), escape.String(path))
			}
			return nil
		},
	}
}
