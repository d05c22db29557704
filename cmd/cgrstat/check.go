package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/check"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

func newCheckCmd(g *globals) *cobra.Command {
	var tf treeFlags
	var keep, asJSON bool
	var flush string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Run the whole workflow (load, create, pin, stress, read) and verify the numbers",
		Long: `check loads cgrstat (or uses the load in place), creates the hierarchy, pins a
stat file per cgroup, stresses every leaf, reads every stat file and verifies:
every stressed leaf has delay > 0 and count > 0, each non-leaf equals the
exact sum of its children in every counter, and the top is at most its
parent. It then removes what it created (unless --keep) and unloads if it
loaded. Exit status: 0 all hold, 1 one failed, 2 the environment cannot run it.
Interrupted (SIGINT, SIGTERM), it removes what it made. Killed (kill -9), it
leaves its tree and load: running check again removes them first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode, err := loader.ParseMode(flush)
			if err != nil {
				return usage(err)
			}
			h, err := g.hierarchy()
			if err != nil {
				return err
			}
			t, err := tf.tree(h)
			if err != nil {
				return err
			}
			rep, err := check.Run(cmd.Context(), check.Options{
				Tree: t, Keep: keep,
				Load:   g.loadOptions(h, mode, loader.DefaultMaxCgroups),
				Stress: stress.Options{Parallel: 2, ScratchDir: os.TempDir()},
			})
			if rep != nil && (rep.Invariants != nil || err == nil) {
				if perr := printCheck(cmd, rep, asJSON); perr != nil {
					return perr
				}
			}
			switch {
			case errors.Is(err, check.ErrFailed):
				return errors.New(rep.Summary())
			case errors.Is(err, check.ErrTreeExists):
				return fmt.Errorf("%w (remove it with '%s', or choose another --parent)", err, g.destroyCmd(&tf, t))
			}
			return err
		},
	}
	tf.register(cmd, "cgroup to build the tree under")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the tree, its stat files and the load")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&flush, "flush", string(loader.Auto), "flush mode if check loads: auto, fentry, kprobe or walk")
	return cmd
}

func printCheck(cmd *cobra.Command, rep *check.Report, asJSON bool) error {
	if asJSON {
		return format.CheckJSON(cmd.OutOrStdout(), rep)
	}
	return format.CheckText(cmd.OutOrStdout(), rep)
}
