package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// fanOut makes trees wide and deep: 10000 cgroups are 5 levels below the top.
const fanOut = 10

// stressedLeaves is how many leaves reclaim runs in.
const stressedLeaves = 4

// tree is n cgroups: a top and its descendants, created breadth-first so
// that node i's parent is node (i-1)/fanOut.
type tree struct {
	h      *cgroup.Hierarchy
	top    cgroup.Cgroup
	n      int
	nodes  []cgroup.Cgroup // the ones that exist, in creation order
	leaves []cgroup.Cgroup // where reclaim is induced
	built  time.Duration
}

// buildTree creates the tree with plain mkdirs. On error it returns what
// it made so far, for destroy.
func buildTree(ctx context.Context, h *cgroup.Hierarchy, top cgroup.Cgroup, n int) (*tree, error) {
	t := &tree{h: h, top: top, n: n}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		c := top
		if i > 0 {
			c = t.nodes[(i-1)/fanOut].Child(fmt.Sprintf("c%d", (i-1)%fanOut))
		}
		if err := c.Mkdir(); err != nil {
			return t, err
		}
		t.nodes = append(t.nodes, c)
		if err := t.enableMemory(i, c); err != nil {
			return t, err
		}
	}
	t.built = time.Since(start)
	t.leaves = t.spreadLeaves()
	return t, nil
}

// enableMemory gives the children of an inner node the memory controller
// (cgroup v2; on v1 every cgroup has it).
func (t *tree) enableMemory(i int, c cgroup.Cgroup) error {
	if i*fanOut+1 >= t.n {
		return nil // a leaf
	}
	_, err := t.h.EnableMemory(c)
	return err
}

// spreadLeaves picks leaves far apart, so that their updates meet only
// near the top, as independent workloads' would.
func (t *tree) spreadLeaves() []cgroup.Cgroup {
	first := (t.n-2)/fanOut + 1 // the first node without children
	if t.n == 1 {
		first = 0
	}
	count := t.n - first
	var out []cgroup.Cgroup
	for k := 0; k < stressedLeaves && k < count; k++ {
		out = append(out, t.nodes[first+k*count/stressedLeaves])
	}
	return out
}

// destroy removes every cgroup of the tree, children first, after killing
// what may be left in the stressed leaves.
func (t *tree) destroy() error {
	if t == nil {
		return nil
	}
	var errs []error
	for _, l := range t.leaves {
		if pids, err := l.Procs(); err == nil && len(pids) > 0 {
			errs = append(errs, l.Kill())
		}
	}
	for i := len(t.nodes) - 1; i >= 0; i-- {
		if err := removeRetry(t.nodes[i]); err != nil {
			errs = append(errs, err)
			break // its parent cannot go either
		}
	}
	t.nodes = nil
	return errors.Join(errs...)
}

// removeRetry waits out EBUSY from processes that are still exiting.
func removeRetry(c cgroup.Cgroup) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Remove()
		if err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
