package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/cgtree"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
)

func newHierarchyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hierarchy",
		Short: "Create or destroy a cgroup tree described by a YAML spec",
	}
	cmd.AddCommand(newHierarchyCreateCmd(g), newHierarchyDestroyCmd(g))
	return cmd
}

func newHierarchyCreateCmd(g *globals) *cobra.Command {
	var tf treeFlags
	var pinAll bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the tree (all or nothing), optionally with a stat file per cgroup",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, p, err := g.placeTree(&tf, pinAll)
			if err != nil {
				return err
			}
			if p != nil {
				defer p.Close()
			}
			existed, err := cgtree.Create(t)
			if err != nil {
				return treeError(err)
			}
			out := cmd.OutOrStdout()
			for _, c := range t.Cgroups() {
				fmt.Fprintln(out, c.Path)
			}
			if existed {
				fmt.Fprintf(cmd.ErrOrStderr(), "cgroup %s already existed as specified; nothing created\n", t.Top().Rel)
			}
			if !pinAll {
				return nil
			}
			paths, err := pin.All(p, t.Cgroups())
			if err != nil {
				if !existed {
					_ = cgtree.Destroy(t, false)
				}
				return err
			}
			for _, path := range paths {
				fmt.Fprintln(out, path)
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().BoolVar(&pinAll, "pin", false, "pin a stat file for every cgroup of the tree (needs cgrstat load)")
	return cmd
}

func newHierarchyDestroyCmd(g *globals) *cobra.Command {
	var tf treeFlags
	var kill bool
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Unpin and remove the tree bottom-up",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, p, err := g.placeTree(&tf, false)
			if err != nil {
				return err
			}
			if p != nil {
				defer p.Close()
			}
			if err := cgtree.Teardown(t, p, kill); err != nil {
				return treeError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d cgroups under %s\n", len(t.Cgroups()), t.Parent.Rel)
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().BoolVar(&kill, "kill", false, "kill processes still in the tree (through cgroup.kill where available)")
	return cmd
}

// placeTree resolves the tree and opens the load, which is required with
// needLoad and optional otherwise (nil when nothing is loaded).
func (g *globals) placeTree(tf *treeFlags, needLoad bool) (cgtree.Tree, *loader.Pinned, error) {
	h, err := g.hierarchy()
	if err != nil {
		return cgtree.Tree{}, nil, err
	}
	t, err := tf.tree(h)
	if err != nil {
		return t, nil, err
	}
	p, err := g.open()
	if err != nil && (needLoad || !errors.Is(err, loader.ErrNotLoaded)) {
		return t, nil, err
	}
	return t, p, nil
}

// treeError makes a tree that differs from its spec, or holds processes,
// a usage error: the user must act, nothing failed.
func treeError(err error) error {
	if errors.Is(err, cgtree.ErrDiffers) || errors.Is(err, cgtree.ErrBusy) {
		return usage(err)
	}
	return err
}
