// Package cgtree creates and removes the cgroup tree a spec describes,
// all or nothing.
package cgtree

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/spec"
)

// Tree is a spec placed below a parent cgroup.
type Tree struct {
	H      *cgroup.Hierarchy
	Spec   *spec.Spec
	Parent cgroup.Cgroup
	// Owner, when set, marks the top cgroup as made by that process, so
	// that what it leaves if it dies can be removed by its next run (check).
	Owner cgroup.Owner
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

// ErrPartial says that only part of the tree exists: an interrupted create,
// or cgroups removed outside cgrstat. Destroy removes what is there.
var ErrPartial = errors.New("exists only in part")

// ErrNotExist says that no cgroup of the tree exists.
var ErrNotExist = errors.New("no cgroup of the tree exists")

// ErrParentMemory says that the parent does not give its children the memory
// controller (cgroup v2), which cgrstat will not change on a cgroup it did
// not create.
var ErrParentMemory = errors.New("the memory controller is not enabled for its children")

// State compares what exists with the spec: absent (false, nil), exactly
// present (true, nil), or an error wrapping ErrPartial (some cgroups are
// missing) or ErrDiffers (a cgroup has children the spec does not name).
func (t Tree) State() (exists bool, err error) {
	present, missing := 0, ""
	err = t.Spec.Walk(func(rel string, n *spec.Node) error {
		c := t.Cgroup(rel)
		if !c.Exists() {
			if missing == "" {
				missing = c.Rel
			}
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
		return false, fmt.Errorf("cgroup %s: %w (%d of %d cgroups; %s is missing)", t.Top().Rel, ErrPartial, present, t.Spec.Len(), missing)
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
		// A scratch cgroup of stress belongs to cgrstat, not to the user's tree.
		if !want[name] && !cgroup.IsScratchName(name) {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("cgroup %s: %w: it has children not in the spec: %s", c.Rel, ErrDiffers, strings.Join(extra, ", "))
	}
	return nil
}

// Create creates the tree and applies memory settings. A tree that already
// exists exactly is left as it is (existed is true); one that exists in part
// is an ErrPartial error and is not touched. If anything fails, or ctx ends,
// what Create made is removed again. On v2 the parent must already enable the
// memory controller for its children.
func Create(ctx context.Context, t Tree) (existed bool, err error) {
	if existed, err = t.State(); err != nil || existed {
		return existed, err
	}
	if err := t.parentHasMemory(); err != nil {
		return false, err
	}
	if err := t.checkSettings(); err != nil {
		return false, err
	}
	var made []cgroup.Cgroup
	defer func() {
		if err != nil {
			for i := len(made) - 1; i >= 0; i-- {
				_ = made[i].Remove()
			}
		}
	}()
	err = t.Spec.Walk(func(rel string, n *spec.Node) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := t.Cgroup(rel)
		mkdir := c.Mkdir
		if t.Owner != "" && len(made) == 0 { // the top
			mkdir = func() error { return c.MkdirMarked(t.Owner) }
		}
		if err := mkdir(); err != nil {
			return err
		}
		made = append(made, c)
		return t.configure(c, n)
	})
	return false, err
}

// ErrNeedsV2 says that a spec sets what only cgroup v2 has.
var ErrNeedsV2 = errors.New("memory high needs cgroup v2 (v1 has only limit)")

// checkSettings refuses, before anything is made, settings this hierarchy
// does not have.
func (t Tree) checkSettings() error {
	if t.H.Version != 1 {
		return nil
	}
	return t.Spec.Walk(func(rel string, n *spec.Node) error {
		if n.Memory.High != 0 {
			return fmt.Errorf("%s:%d: cgroup %s: %w", t.Spec.Source, n.Line, rel, ErrNeedsV2)
		}
		return nil
	})
}

func (t Tree) parentHasMemory() error {
	if t.H.Version == 1 {
		return nil
	}
	sc, err := t.Parent.Read("cgroup.subtree_control")
	if err != nil {
		return err
	}
	if !slices.Contains(strings.Fields(sc), "memory") {
		return fmt.Errorf("cgroup %s: %w (cgroup.subtree_control is %q): enable it with 'echo +memory > %s/cgroup.subtree_control' or choose another --parent",
			t.Parent.Rel, ErrParentMemory, sc, t.Parent.Path)
	}
	return nil
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

// ErrBusy says that processes live in the tree.
var ErrBusy = errors.New("processes are still in the tree")

// Destroy removes whatever part of the tree exists, leaves first: only the
// cgroups the spec names (and scratch cgroups a dead stress left in them),
// only when empty. Processes still inside are an error naming them, unless
// kill is set; a cgroup with children the spec does not name is an
// ErrDiffers error; in both cases nothing is removed. It returns how many
// cgroups it removed; none existing is ErrNotExist.
func Destroy(t Tree, kill bool) (int, error) {
	var present []cgroup.Cgroup
	err := t.Spec.WalkPost(func(rel string, n *spec.Node) error {
		c := t.Cgroup(rel)
		if !c.Exists() {
			return nil
		}
		present = append(present, c)
		return extraChildren(c, n)
	})
	if err != nil {
		return 0, err
	}
	if len(present) == 0 {
		return 0, fmt.Errorf("cgroup %s: %w", t.Top().Rel, ErrNotExist)
	}
	if err := evacuate(present, kill); err != nil {
		return 0, err
	}
	for i, c := range present {
		if _, err := cgroup.RemoveStaleScratch(c); err != nil {
			return i, err
		}
		if err := c.RemoveWait(time.Second); err != nil {
			return i, err
		}
	}
	return len(present), nil
}

func evacuate(cgs []cgroup.Cgroup, kill bool) error {
	var busy []string
	for _, c := range cgs {
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
