// Package check runs cgrstat's whole workflow (load, hierarchy, pins,
// stress, read) and verifies what the kernel reports; it also holds the
// tree set-up and tear-down that the hierarchy commands share with it.
package check

import (
	"context"
	"errors"
	"fmt"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/cgtree"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
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

// ErrFailed says that an invariant did not hold.
var ErrFailed = errors.New("check failed")

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
		opts.Load.Owner = string(cgroup.Self())
	}
	p, loaded, err := ensureLoaded(opts.Load)
	if err != nil {
		return nil, err
	}
	defer func() {
		err = errors.Join(err, finish(p, t, loaded, opts.Keep))
	}()
	if !opts.Keep {
		t.Owner = cgroup.Self()
	}
	if _, err := cgtree.Create(ctx, t); err != nil {
		return nil, err
	}
	if _, err := PinTree(ctx, p, t); err != nil {
		return nil, err
	}
	rep = &Report{Flush: p.Record.Flush, Cgroup: t.H.Version, Kept: opts.Keep}
	opts.Stress.Collector = reclaim.Collector{P: p}
	if rep.Stress, err = stress.Run(ctx, t.H, Jobs(t, 0, 0), opts.Stress); err != nil {
		return rep, err
	}
	if err := rep.collect(p, t); err != nil {
		return rep, err
	}
	rep.Invariants = Verify(t.Spec, rep.stats(), rep.Parent)
	rep.Pass = allPass(rep.Invariants)
	if !rep.Pass {
		return rep, ErrFailed
	}
	return rep, nil
}

// ErrTreeExists says that the tree check would build is there already.
var ErrTreeExists = errors.New("already exists: check builds its own tree")

func alreadyThere(t cgtree.Tree, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("cgroup %s %w", t.Top().Rel, ErrTreeExists)
}

// recoverCrashed removes what a check that died without cleaning up (kill -9)
// left: its tree, which it marked, and its load, which names it as owner.
// What another check still running made is left alone.
func recoverCrashed(t cgtree.Tree, pinPath string) error {
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
	var p *loader.Pinned
	if isLoaded {
		var err error
		if p, err = loader.Open(pinPath); err != nil {
			return err
		}
		defer p.Close()
	}
	_, err := Teardown(p, t, false)
	return err
}

// ensureLoaded opens the load at the pin path, loading first if needed.
func ensureLoaded(opts loader.Options) (*loader.Pinned, bool, error) {
	rec, err := loader.Load(opts)
	loaded := err == nil
	if err != nil && !errors.Is(err, loader.ErrLoaded) {
		return nil, false, err
	}
	if !loaded && opts.Flush != loader.Auto && rec.Flush != opts.Flush {
		return nil, false, fmt.Errorf("%w: already loaded at %s with flush mode %s, not %s: unload first, or use another --pin-path",
			ErrOtherMode, opts.PinPath, rec.Flush, opts.Flush)
	}
	p, err := loader.Open(opts.PinPath)
	if err != nil && loaded {
		_, _ = loader.Unload(opts.PinPath)
	}
	return p, loaded, err
}

// ErrOtherMode says that the load in place uses another flush mode than asked.
var ErrOtherMode = errors.New("another flush mode")

func finish(p *loader.Pinned, t cgtree.Tree, loaded, keep bool) error {
	if keep {
		p.Close()
		return nil
	}
	_, err := Teardown(p, t, true)
	p.Close()
	if loaded {
		_, uerr := loader.Unload(p.Path)
		err = errors.Join(err, uerr)
	}
	return err
}

// collect reads every node's stat file, the top's first, then the parent.
func (r *Report) collect(p *loader.Pinned, t cgtree.Tree) error {
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
	r.Parent, err = reclaim.Flush(p, t.Parent)
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

// Jobs makes one stress job per leaf of the tree, with the spec's sizes
// unless size or rounds override them.
func Jobs(t cgtree.Tree, size int64, rounds int) []stress.Job {
	var jobs []stress.Job
	for _, l := range t.Spec.Leaves() {
		j := stress.Job{Cgroup: t.Cgroup(l.Rel), Size: int64(l.Node.Stress.Size), Rounds: l.Node.Stress.Rounds}
		if size > 0 {
			j.Size = size
		}
		if rounds > 0 {
			j.Rounds = rounds
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// PinTree pins a stat file for every cgroup of the tree; on error, or when
// ctx ends, it removes the ones it made.
func PinTree(ctx context.Context, p *loader.Pinned, t cgtree.Tree) ([]string, error) {
	var paths []string
	for _, c := range t.Cgroups() {
		if err := ctx.Err(); err != nil {
			unpinTree(p.Path, t)
			return nil, err
		}
		path, err := pin.Pin(p, c)
		if err != nil {
			unpinTree(p.Path, t)
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

func unpinTree(pinPath string, t cgtree.Tree) {
	for _, c := range t.Cgroups() {
		_ = pin.Unpin(pinPath, c.Rel)
	}
}

// Teardown removes a tree with everything cgrstat keeps about it: its
// stat files, its processes (with kill), the cgroups, and its map entries
// after a last flush that hands its totals to the parent. p may be nil
// when nothing is loaded.
func Teardown(p *loader.Pinned, t cgtree.Tree, kill bool) (removed int, err error) {
	var ids []uint64
	for _, c := range t.Cgroups() {
		if id, err := cgroup.ID(c); err == nil {
			ids = append(ids, id)
		}
	}
	if p != nil && t.Top().Exists() {
		if _, err := reclaim.Flush(p, t.Top()); err != nil {
			return 0, err
		}
	}
	if removed, err = cgtree.Destroy(t, kill); err != nil {
		return removed, err
	}
	if p == nil {
		return removed, nil
	}
	unpinTree(p.Path, t)
	return removed, reclaim.Forget(p, ids)
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
