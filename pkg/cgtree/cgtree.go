// Package cgtree creates and removes the cgroup tree a spec describes,
// all or nothing.
package cgtree

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/spec"
)

// Tree is a spec placed below a parent cgroup.
type Tree struct {
	H      *cgroup.Hierarchy
	Spec   *spec.Spec
	Parent cgroup.Cgroup
}

// Cgroup returns the cgroup of the spec node at rel ("test/child1").
func (t Tree) Cgroup(rel string) cgroup.Cgroup { return t.Parent.Child(rel) }

// Top is the cgroup of the spec's top node.
func (t Tree) Top() cgroup.Cgroup { return t.Cgroup(t.Spec.Root.Name) }

// Cgroups lists the tree's cgroups, parents before children.
func (t Tree) Cgroups() []cgroup.Cgroup {
	var out []cgroup.Cgroup
	_ = t.Spec.Walk(func(rel string, _ *spec.Node) error {
		out = append(out, t.Cgroup(rel))
		return nil
	})
	return out
}

// ErrDiffers says that cgroups of the spec exist but do not match it.
var ErrDiffers = errors.New("differs from the spec")

// State compares what exists with the spec: absent (false, nil), exactly
// present (true, nil), or an error wrapping ErrDiffers naming a difference.
func (t Tree) State() (exists bool, err error) {
	present, missing := 0, ""
	err = t.Spec.Walk(func(rel string, n *spec.Node) error {
		c := t.Cgroup(rel)
		if !c.Exists() {
			missing = c.Rel
			return nil
		}
		present++
		return extraChildren(c, n)
	})
	switch {
	case err != nil:
		return false, err
	case present == 0:
		return false, nil
	case missing != "":
		return false, fmt.Errorf("cgroup %s: %w: %s is missing", t.Top().Rel, ErrDiffers, missing)
	}
	return true, nil
}

func extraChildren(c cgroup.Cgroup, n *spec.Node) error {
	names, err := c.Children()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, ch := range n.Children {
		want[ch.Name] = true
	}
	var extra []string
	for _, name := range names {
		if !want[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("cgroup %s: %w: it has children not in the spec: %s", c.Rel, ErrDiffers, strings.Join(extra, ", "))
	}
	return nil
}

// Create creates the tree, enables the memory controller above every
// child, and applies memory settings. A tree that already exists exactly
// is left as it is (existed is true). If anything fails, what Create made
// is removed again.
func Create(t Tree) (existed bool, err error) {
	if existed, err = t.State(); err != nil || existed {
		return existed, err
	}
	var undo []func() error
	defer func() {
		if err != nil {
			rollback(undo)
		}
	}()
	changed, err := t.H.EnableMemory(t.Parent)
	if err != nil {
		return false, err
	}
	if changed {
		undo = append(undo, func() error { return t.H.DisableMemory(t.Parent) })
	}
	err = t.Spec.Walk(func(rel string, n *spec.Node) error {
		c := t.Cgroup(rel)
		if err := c.Mkdir(); err != nil {
			return err
		}
		undo = append(undo, c.Remove)
		return t.configure(c, n)
	})
	return false, err
}

func (t Tree) configure(c cgroup.Cgroup, n *spec.Node) error {
	if !n.IsLeaf() {
		if _, err := t.H.EnableMemory(c); err != nil {
			return err
		}
	}
	max := n.Memory.Max
	if max == 0 {
		max = n.Memory.Limit
	}
	return t.H.SetLimits(c, cgroup.Limits{Max: int64(max), High: int64(n.Memory.High)})
}

// rollback runs undo steps, newest first.
func rollback(undo []func() error) {
	for i := len(undo) - 1; i >= 0; i-- {
		_ = undo[i]()
	}
}

// ErrBusy says that processes live in the tree.
var ErrBusy = errors.New("processes are still in the tree")

// Destroy removes the tree bottom-up. Processes still inside are an error
// naming them, unless kill is set; nothing is removed in that case.
func Destroy(t Tree, kill bool) error {
	exists, err := t.State()
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("cgroup %s: no such cgroup", t.Top().Rel)
	}
	if err := t.evacuate(kill); err != nil {
		return err
	}
	return t.Spec.WalkPost(func(rel string, _ *spec.Node) error {
		return t.Cgroup(rel).Remove()
	})
}

func (t Tree) evacuate(kill bool) error {
	var busy []string
	for _, c := range t.Cgroups() {
		pids, err := c.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			continue
		}
		if !kill {
			busy = append(busy, fmt.Sprintf("%s (pids %s)", c.Rel, joinInts(pids)))
			continue
		}
		if err := c.Kill(); err != nil {
			return err
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("%w: %s; stop them or use --kill", ErrBusy, strings.Join(busy, ", "))
	}
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, " ")
}

// Rel returns the path of c relative to the tree's parent, as the spec names it.
func (t Tree) Rel(c cgroup.Cgroup) string {
	rel, _ := filepath.Rel(t.Parent.Path, c.Path)
	return rel
}
