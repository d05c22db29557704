package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPaths names directories by inode, as the kernel names cgroups by id,
// and finds one made after the first walk once a second has passed.
func TestPaths(t *testing.T) {
	h := &Hierarchy{Mount: t.TempDir(), Version: 2}
	if err := os.MkdirAll(filepath.Join(h.Mount, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := h.Paths()
	for _, rel := range []string{"/", "/a", "/a/b"} {
		id, err := ID(h.Cgroup(rel))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := p.Path(id, 0); !ok || got != rel {
			t.Errorf("Path(id of %s) = %q, %v", rel, got, ok)
		}
	}
	if err := os.Mkdir(filepath.Join(h.Mount, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := ID(h.Cgroup("/c"))
	if err != nil {
		t.Fatal(err)
	}
	p.walked = p.walked.Add(-rewalkAfter) // as if a second had passed
	if got, ok := p.Path(id, 0); !ok || got != "/c" {
		t.Errorf("a cgroup made after the walk: Path = %q, %v", got, ok)
	}
	if _, ok := p.Path(1<<62, 0); ok {
		t.Error("an unknown id has a path")
	}
}
