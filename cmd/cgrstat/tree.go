package main

import (
	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/cgtree"
	"github.com/cgrstat/cgrstat/pkg/spec"
)

// treeFlags are the flags of the commands that place a spec: -f and --parent.
type treeFlags struct {
	file   string
	parent string
}

func (f *treeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "file", "f", "", "hierarchy spec (YAML); default: the embedded seed hierarchy")
	cmd.Flags().StringVar(&f.parent, "parent", "", "cgroup to build the tree under (default: the root on cgroup v2, your own memory cgroup on v1)")
}

// tree parses the spec and resolves the parent.
func (f *treeFlags) tree(h *cgroup.Hierarchy) (cgtree.Tree, error) {
	s := spec.Default()
	if f.file != "" {
		var err error
		if s, err = spec.ParseFile(f.file); err != nil {
			return cgtree.Tree{}, usage(err)
		}
	}
	parent := h.DefaultParent()
	if f.parent != "" {
		var err error
		if parent, err = h.Resolve(f.parent); err != nil {
			return cgtree.Tree{}, usage(err)
		}
	}
	return cgtree.Tree{H: h, Spec: s, Parent: parent}, nil
}
