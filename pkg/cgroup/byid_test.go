package cgroup_test

import (
	"testing"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// TestKernelPathOf: a cgroup's id resolves to its path while it exists,
// and to an error once it is removed.
func TestKernelPathOf(t *testing.T) {
	h := testenv.Hierarchy(t)
	top := testenv.Cgroups(t, h, "a")
	leaf := top.Child("a")
	id, err := cgroup.ID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := h.PathOf(id); err != nil || p != leaf.Rel {
		t.Fatalf("PathOf(%d) = %q, %v; want %s", id, p, err, leaf.Rel)
	}
	root, err := cgroup.ID(h.Cgroup("/"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := h.PathOf(root); err != nil || p != "/" {
		t.Errorf("PathOf(root) = %q, %v; want /", p, err)
	}
	if err := leaf.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := leaf.Mkdir(); err != nil { // testenv's cleanup removes it again
		t.Fatal(err)
	}
	if p, err := h.PathOf(id); err == nil {
		t.Errorf("PathOf(%d) of a removed cgroup = %q, want an error", id, p)
	}
}
