package main

import (
	"strings"

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

// register adds the flags; parentHelp says what --parent is to this command.
func (f *treeFlags) register(cmd *cobra.Command, parentHelp string) {
	cmd.Flags().StringVarP(&f.file, "file", "f", "", "hierarchy spec (YAML); default: the embedded seed hierarchy")
	cmd.Flags().StringVar(&f.parent, "parent", "", parentHelp+" (default: the root on cgroup v2, your own memory cgroup on v1)")
}

// destroyCmd is the command line that removes t, with the flags that place it.
func (g *globals) destroyCmd(f *treeFlags, t cgtree.Tree) string {
	s := "hierarchy destroy"
	if f.file != "" {
		s += " -f " + shellQuote(f.file)
	}
	return g.command(s + " --parent " + shellQuote(t.Parent.Rel))
}

// shellQuote quotes s for a shell when it holds more than plain path characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
