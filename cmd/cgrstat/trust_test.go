package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// The tests here are issue 17's "never harm what you did not make": each
// reproduction of the issue, which failed before the fix.

// mkdirs creates cgroups by hand, as a user would (no cgrstat mark), and
// removes them at cleanup, children first.
func mkdirs(t *testing.T, cgs ...cgroup.Cgroup) {
	t.Helper()
	for _, c := range cgs {
		if err := c.Mkdir(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for i := len(cgs) - 1; i >= 0; i-- {
			if cgs[i].Exists() {
				if err := cgs[i].RemoveWait(5 * time.Second); err != nil {
					t.Errorf("removing %s: %v", cgs[i].Rel, err)
				}
			}
		}
	})
}

// TestKernelDestroyOnlyWhatCreateMade is issue 17's first reproduction: a
// tree the user made by hand, matching a spec (and the embedded spec's
// test tree), is left whole with exit 2, its settings unchanged; a tree
// create made is removed; one where the user replaced a leaf by their own
// loses only what create made, and destroy says on stderr what it left.
func TestKernelDestroyOnlyWhatCreateMade(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()

	// The reproduction: qa-manual/x, made by hand, with a limit.
	mine := box.Child("qa-manual")
	mkdirs(t, mine, mine.Child("x"))
	limitFile, limit := "memory.max", "104857600"
	if l.h.Version == 1 {
		limitFile = "memory.limit_in_bytes"
	}
	if err := mine.Write(limitFile, limit); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(specPath, []byte("name: qa-manual\nchildren: [{name: x}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, "removed nothing", l.args("hierarchy", "destroy", "-f", specPath, "--parent", box.Rel)...)
	if !mine.Child("x").Exists() {
		t.Fatal("destroy removed a cgroup it did not create")
	}
	if got, _ := mine.Read(limitFile); strings.TrimSpace(got) != limit {
		t.Errorf("%s of the user's cgroup is %s, was %s", limitFile, got, limit)
	}

	// The embedded spec (test/...) made by hand: a bare destroy leaves it.
	test := box.Child("test")
	var seed []cgroup.Cgroup
	for _, rel := range []string{"", "child1", "child1/child1_1", "child1/child1_2", "child2", "child2/child2_1", "child2/child2_2"} {
		seed = append(seed, test.Child(rel))
	}
	mkdirs(t, seed...)
	wantUsage(t, "not made by cgrstat", l.args("hierarchy", "destroy", "--parent", box.Rel)...)
	for _, c := range seed {
		if !c.Exists() {
			t.Fatalf("a bare hierarchy destroy removed %s, which the user made", c.Rel)
		}
	}

	// A tree create made goes whole.
	path, top := l.writeSpec(deepSpec)
	l.run("hierarchy", "create", "-f", path, "--parent", box.Rel)
	if out := l.run("hierarchy", "destroy", "-f", path, "--parent", box.Rel); !strings.Contains(out, "removed 8 cgroups") {
		t.Errorf("destroy of a tree create made: %q", out)
	}

	// A leaf replaced by the user's own: it and its ancestors stay, the rest goes.
	l.run("hierarchy", "create", "-f", path, "--parent", box.Rel)
	leaf := box.Child(top).Child("a/a1/y")
	if err := leaf.Remove(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // what destroy leaves: runs after the leaf's own cleanup
		for _, rel := range []string{"a/a1", "a", ""} {
			_ = box.Child(top).Child(rel).Remove()
		}
	})
	mkdirs(t, leaf)
	r := cli(t, l.args("hierarchy", "destroy", "-f", path, "--parent", box.Rel)...)
	if r.code != 0 || !strings.Contains(r.stdout, "removed 4 cgroups") ||
		!strings.Contains(r.stderr, "left 4 cgroups of the tree") || !strings.Contains(r.stderr, leaf.Rel) ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("destroy of a tree with the user's leaf: exit %d, %q %q; want 0, 4 removed, 4 left on one line of stderr", r.code, r.stdout, r.stderr)
	}
	for _, rel := range []string{"a/a1/y", "a/a1", "a", ""} {
		if !box.Child(top).Child(rel).Exists() {
			t.Errorf("destroy removed %s, which holds the user's cgroup", rel)
		}
	}
	for _, rel := range []string{"a/a1/x", "a/a1/z", "a/a2", "b"} {
		if box.Child(top).Child(rel).Exists() {
			t.Errorf("destroy left %s, which create made", rel)
		}
	}
}
