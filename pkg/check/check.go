// Package check runs cgrstat's whole workflow (load, tree, pins, stress,
// read) and verifies what the kernel reports.
package check

import (
	"context"
	"errors"
	"fmt"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/cgtree"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// Options configure Run.
type Options struct {
	Tree   cgtree.Tree
	Load   loader.Options
	Stress stress.Options
	Keep   bool
}

// Node is one cgroup of the tree with its stats as read from its stat file.
type Node struct {
	Rel  string       `json:"cgroup"`
	Leaf bool         `json:"leaf"`
	Stat reclaim.Stat `json:"stat"`
}

// Report is what check found.
type Report struct {
	Flush      loader.Mode     `json:"flush"`
	Cgroup     int             `json:"cgroup_version"`
	Parent     reclaim.Stat    `json:"parent"`
	Nodes      []Node          `json:"nodes"`
	Stress     []stress.Result `json:"stress"`
	Invariants []Invariant     `json:"invariants"`
	Pass       bool            `json:"pass"`
	Kept       bool            `json:"kept"`
}

var (
	// ErrFailed says that an invariant did not hold.
	ErrFailed = errors.New("check failed")
	// ErrTreeExists: check builds its own tree and will not use one that is there.
	ErrTreeExists = errors.New("the tree already exists")
	// ErrOtherMode: the pin path holds a load in another flush mode than asked for.
	ErrOtherMode = readout.ErrOtherMode
)

// Run runs the workflow and cleans up what it created unless opts.Keep.
// The error wraps ErrFailed when an invariant failed.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	t := opts.Tree
	if err := recoverCrashed(t, opts.Load.PinPath); err != nil {
		return nil, err
	}
	if exists, serr := t.State(); serr != nil || exists {
		return nil, alreadyThere(t, serr)
	}
	if !opts.Keep {
		// Marks on the load and the tree let the next check remove them if
		// this one is killed before it does.
		opts.Load.Owner = string(cgroup.Self())
		t.Owner = cgroup.Self()
	}
	p, loaded, err := readout.Ensure(opts.Load)
	if err != nil {
		return nil, err
	}
	defer func() {
		err = errors.Join(err, finish(p, t, loaded, opts.Keep))
	}()
	if _, err := cgtree.Create(ctx, t); err != nil {
		return nil, err
	}
	if _, err := pin.All(ctx, p, t.Cgroups()); err != nil {
		return nil, err
	}
	rep = &Report{Flush: p.Record.Flush, Cgroup: t.H.Version, Kept: opts.Keep}
	opts.Stress.Flusher = p
	if rep.Stress, err = stress.Run(ctx, t.H, stress.TreeJobs(t, 0, 0), opts.Stress); err != nil {
		return rep, err
	}
	if err := rep.collect(p, t); err != nil {
		return rep, err
	}
	rep.Invariants = Verify(t.Spec, rep.stats(), rep.Parent, StressCause(t.H.Version))
	rep.Pass = allPass(rep.Invariants)
	if !rep.Pass {
		return rep, ErrFailed
	}
	return rep, nil
}

func alreadyThere(t cgtree.Tree, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("cgroup %s: %w: check builds its own tree", t.Top().Rel, ErrTreeExists)
}

// recoverCrashed removes what a check that died without cleaning up (kill -9)
// left: its tree, which it marked, and its load, which names it as owner.
// What a check still running made is left alone.
func recoverCrashed(t cgtree.Tree, pinPath string) error {
	if _, err := cgroup.RemoveInterrupted(); err != nil {
		return err
	}
	rec, err := loader.ReadRecord(pinPath)
	if err != nil && !errors.Is(err, loader.ErrNotLoaded) {
		return err
	}
	if owner, ok := t.Top().MadeBy(); ok && owner.Dead() {
		if err := teardownWith(pinPath, rec != nil, t); err != nil {
			return err
		}
	}
	if rec != nil && rec.Owner != "" && cgroup.Owner(rec.Owner).Dead() {
		_, err := loader.Unload(pinPath)
		return err
	}
	return nil
}

func teardownWith(pinPath string, isLoaded bool, t cgtree.Tree) error {
	var p *readout.Handle
	if isLoaded {
		var err error
		if p, err = readout.Open(pinPath); err != nil {
			return err
		}
		defer p.Close()
	}
	return leftErr(cgtree.Teardown(t, p, false))
}

// leftErr makes a tree check made but could not remove whole an error.
func leftErr(r cgtree.Removal, err error) error {
	if err == nil && len(r.Left) > 0 {
		err = errors.New(r.Summary())
	}
	return err
}

func finish(p *readout.Handle, t cgtree.Tree, loaded, keep bool) error {
	if keep {
		p.Close()
		return nil
	}
	err := leftErr(cgtree.Teardown(t, p, true))
	p.Close()
	if loaded {
		_, uerr := loader.Unload(p.Path)
		err = errors.Join(err, uerr)
	}
	return err
}

// collect reads every node's stat file, the top's first, then the parent.
func (r *Report) collect(p *readout.Handle, t cgtree.Tree) error {
	for _, c := range t.Cgroups() {
		st, err := reclaim.ReadFile(pin.StatFile(p.Path, c.Rel))
		if err != nil {
			return err
		}
		st.Path = c.Rel
		r.Nodes = append(r.Nodes, Node{Rel: t.Rel(c), Stat: st})
	}
	leaves := map[string]bool{}
	for _, l := range t.Spec.Leaves() {
		leaves[l.Rel] = true
	}
	for i := range r.Nodes {
		r.Nodes[i].Leaf = leaves[r.Nodes[i].Rel]
	}
	var err error
	r.Parent, err = p.ReadOne(t.Parent)
	return err
}

func (r *Report) stats() map[string]reclaim.Stat {
	m := map[string]reclaim.Stat{}
	for _, n := range r.Nodes {
		m[n.Rel] = n.Stat
	}
	return m
}

func allPass(invs []Invariant) bool {
	for _, inv := range invs {
		if !inv.Pass {
			return false
		}
	}
	return true
}

// Summary is one line saying how the check went.
func (r *Report) Summary() string {
	failed := 0
	for _, inv := range r.Invariants {
		if !inv.Pass {
			failed++
		}
	}
	verdict := "PASS"
	if failed > 0 {
		verdict = "FAIL"
	}
	return fmt.Sprintf("%s: %d of %d invariants hold (flush mode %s, cgroup v%d)",
		verdict, len(r.Invariants)-failed, len(r.Invariants), r.Flush, r.Cgroup)
}
