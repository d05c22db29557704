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
	// Owner, when set, marks the cgroups as made by that process, so that
	// what it leaves if it dies can be removed by its next run (check), and
	// no one else removes them while it runs. Unset, they are marked as
	// cgrstat's to keep (cgroup.Kept).
	Owner cgroup.Owner
}

func (t Tree) owner() cgroup.Owner {
	if t.Owner == "" {
		return cgroup.Kept
	}
	return t.Owner
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
		// Marked as soon as made (MkdirMarked), so that destroy can prove it
		// made every cgroup it removes even after a kill -9 of this run.
		c := t.Cgroup(rel)
		if err := c.MkdirMarked(t.owner()); err != nil {
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

// ErrNotMade says that destroy removed nothing: no cgroup of the tree that
// exists is one cgrstat can prove it made.
var ErrNotMade = errors.New("removed nothing")

// Left is a cgroup of the tree that Destroy did not remove, and why.
type Left struct {
	Cgroup cgroup.Cgroup
	Why    string
}

// Removal is what Destroy did: how many cgroups it removed, and those it left.
type Removal struct {
	Removed int
	Left    []Left
}

// Summary says in one line which cgroups were left and why, grouped by
// reason, a few names each ("" when none was left).
func (r Removal) Summary() string {
	if len(r.Left) == 0 {
		return ""
	}
	var reasons []string
	names := map[string][]string{}
	for _, l := range r.Left {
		if names[l.Why] == nil {
			reasons = append(reasons, l.Why)
		}
		names[l.Why] = append(names[l.Why], l.Cgroup.Rel)
	}
	parts := make([]string, len(reasons))
	for i, why := range reasons {
		n := names[why]
		shown := strings.Join(n[:min(len(n), 3)], ", ")
		if len(n) > 3 {
			shown += fmt.Sprintf(" and %d more", len(n)-3)
		}
		parts[i] = fmt.Sprintf("%s: %s", why, shown)
	}
	what := "cgroups"
	if len(r.Left) == 1 {
		what = "cgroup"
	}
	return fmt.Sprintf("left %d %s of the tree: %s", len(r.Left), what, strings.Join(parts, "; "))
}

// Reasons Destroy leaves a cgroup.
const (
	whyUnmarked = "not made by cgrstat (no trusted.cgrstat mark: only cgroups hierarchy create or check made are removed)"
	whyHolds    = "holds a cgroup that is left"
)

// Destroy removes whatever part of the tree exists, leaves first: only the
// cgroups of the spec that cgrstat made (their trusted.cgrstat mark says so,
// see Create) and that no cgrstat still running owns, only when empty, and
// scratch cgroups a dead stress left in them. Every other cgroup of the
// tree is left, with its ancestors, and listed in the Removal. Processes
// still inside are an error naming them, unless kill is set; a cgroup with
// children the spec does not name is an ErrDiffers error; in both cases
// nothing is removed. None existing is ErrNotExist; some existing but none
// removable is ErrNotMade.
func Destroy(t Tree, kill bool) (Removal, error) {
	var r Removal
	// A create killed between mkdir and mark left an unmarked cgroup that
	// its note proves is cgrstat's (MkdirMarked).
	interrupted, err := cgroup.RemoveInterrupted()
	if err != nil {
		return r, err
	}
	inTree := map[string]bool{}
	for _, c := range t.Cgroups() {
		inTree[c.Path] = true
	}
	for _, path := range interrupted {
		if inTree[path] {
			r.Removed++
		}
	}
	var present, remove []cgroup.Cgroup
	left := map[string]bool{}
	err = t.Spec.WalkPost(func(rel string, n *spec.Node) error {
		c := t.Cgroup(rel)
		if !c.Exists() {
			return nil
		}
		present = append(present, c)
		if err := extraChildren(c, n); err != nil {
			return err
		}
		why := whyLeft(c)
		for _, ch := range n.Children {
			if why == "" && left[c.Child(ch.Name).Path] {
				why = whyHolds
			}
		}
		if why != "" {
			left[c.Path] = true
			r.Left = append(r.Left, Left{c, why})
			return nil
		}
		remove = append(remove, c)
		return nil
	})
	if err != nil {
		return r, err
	}
	if len(present) == 0 && r.Removed == 0 {
		return r, fmt.Errorf("cgroup %s: %w", t.Top().Rel, ErrNotExist)
	}
	if len(remove) == 0 && r.Removed == 0 {
		return r, fmt.Errorf("%w under %s: %s", ErrNotMade, t.Parent.Rel, r.Summary())
	}
	if err := evacuate(remove, kill); err != nil {
		return r, err
	}
	for _, c := range present {
		if _, err := cgroup.RemoveStaleScratch(c); err != nil {
			return r, err
		}
	}
	for _, c := range remove {
		if err := c.RemoveWait(time.Second); err != nil {
			return r, err
		}
		r.Removed++
	}
	return r, nil
}

// whyLeft says why Destroy must leave c, or "" when cgrstat made it and no
// cgrstat that still runs owns it.
func whyLeft(c cgroup.Cgroup) string {
	owner, ok := c.MadeBy()
	if !ok {
		return whyUnmarked
	}
	if pid, running := owner.Running(); running && owner != cgroup.Self() {
		return fmt.Sprintf("made by a cgrstat that still runs (pid %d) and removes it itself", pid)
	}
	return ""
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
