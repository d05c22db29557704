package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/cgtree"
	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

func newHierarchyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hierarchy",
		Short: "Create or destroy a cgroup tree described by a YAML spec",
	}
	cmd.AddCommand(locking(lockExclusive, making(newHierarchyCreateCmd(g))), locking(lockExclusive, newHierarchyDestroyCmd(g)))
	return cmd
}

func newHierarchyCreateCmd(g *globals) *cobra.Command {
	var tf treeFlags
	var pinAll bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the tree (all or nothing), optionally with a stat file per cgroup",
		Long: `Create the cgroups of the spec below --parent, with their memory settings.
If anything fails, or the command is interrupted (SIGINT, SIGTERM), what it
created is removed. Each cgroup is marked as cgrstat's (a trusted.cgrstat
extended attribute) as soon as it is made, and 'hierarchy destroy' removes
only marked cgroups: if create is killed (kill -9), 'cgrstat hierarchy
destroy' with the same -f and --parent removes whatever part of the tree
exists.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, p, err := g.placeTree(&tf, pinAll)
			if err != nil {
				return err
			}
			if p != nil {
				defer p.Close()
			}
			existed, err := cgtree.Create(cmd.Context(), t)
			if errors.Is(err, cgtree.ErrPartial) {
				return usage(fmt.Errorf("%w: remove it with '%s' and create it again", err, g.destroyCmd(&tf, t)))
			}
			if err != nil {
				return err
			}
			if existed {
				fmt.Fprintf(cmd.ErrOrStderr(), "cgroup %s already existed as specified; nothing created\n", escape.String(t.Top().Rel))
			}
			var pins []string
			if pinAll {
				if pins, err = pin.All(cmd.Context(), p, t.Cgroups()); err != nil {
					if !existed { // a tree this run created goes again
						_, _ = cgtree.Destroy(t, false)
					}
					return err
				}
			}
			out := cmd.OutOrStdout()
			for _, c := range t.Cgroups() {
				fmt.Fprintln(out, escape.String(c.Path))
			}
			for _, path := range pins {
				fmt.Fprintln(out, escape.String(path))
			}
			return nil
		},
	}
	tf.register(cmd, "cgroup to build the tree under")
	cmd.Flags().BoolVar(&pinAll, "pin", false, "pin a stat file for every cgroup of the tree (needs cgrstat load)")
	return cmd
}

func newHierarchyDestroyCmd(g *globals) *cobra.Command {
	var tf treeFlags
	var kill bool
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Unpin and remove the tree bottom-up",
		Long: `Remove whatever part of the spec's tree exists below --parent, leaves first:
only the cgroups the spec names that cgrstat made ('hierarchy create' and
'check' mark each cgroup as they make it, in a trusted.cgrstat extended
attribute), and scratch cgroups a killed stress left in them, and only when
they are empty. Any other cgroup of the tree is left, with the cgroups that
hold it, and listed on stderr; if none could be removed, the exit status is
2. Stat files of removed cgroups are unpinned. This is also how to clean up
after 'hierarchy create' or 'check' was killed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, p, err := g.placeTree(&tf, false)
			if err != nil {
				return err
			}
			if p != nil {
				defer p.Close()
			}
			r, err := cgtree.Teardown(t, p, kill)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s under %s\n", plural(r.Removed, "cgroup"), escape.String(t.Parent.Rel))
			if left := r.Summary(); left != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), escape.String(left))
			}
			return nil
		},
	}
	tf.register(cmd, "cgroup the tree was built under")
	cmd.Flags().BoolVar(&kill, "kill", false, "kill processes still in the tree (through cgroup.kill where available)")
	return cmd
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// placeTree resolves the tree and opens the load, which is required with
// needLoad and optional otherwise (nil when nothing is loaded).
func (g *globals) placeTree(tf *treeFlags, needLoad bool) (cgtree.Tree, *readout.Handle, error) {
	h, err := g.hierarchy()
	if err != nil {
		return cgtree.Tree{}, nil, err
	}
	t, err := tf.tree(h)
	if err != nil {
		return t, nil, err
	}
	if needLoad {
		p, err := g.open()
		return t, p, err
	}
	p, err := g.openIfLoaded()
	return t, p, err
}
