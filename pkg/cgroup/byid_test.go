package cgroup_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// TestKernelPaths: a cgroup's id resolves to its path while it exists,
// by its file handle and, without that, from a task in it or below it
// (the cgroup and its ancestors); a removed cgroup's id to none.
func TestKernelPaths(t *testing.T) {
	h := testenv.Hierarchy(t)
	top := testenv.Cgroups(t, h, "a", "a/b")
	leaf, mid := top.Child("a/b"), top.Child("a")
	ids := map[string]uint64{}
	for _, c := range []cgroup.Cgroup{leaf, mid, h.Cgroup("/")} {
		id, err := cgroup.ID(c)
		if err != nil {
			t.Fatal(err)
		}
		ids[c.Rel] = id
	}
	for rel, id := range ids {
		if p, ok := h.TaskPaths().Path(id, 0); !ok || p != rel {
			t.Errorf("Path(%d) by handle = %q, %v; want %s", id, p, ok, rel)
		}
	}

	// A task in the leaf names the leaf and its ancestors, whatever the
	// handle would say: a pid and an id that are not its cgroup's fall
	// back to the handle, which an unknown id fails.
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	if err := os.WriteFile(filepath.Join(leaf.Path, "cgroup.procs"), []byte(fmt.Sprint(sleep.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // back where it was, so that the leaf can go
		os.WriteFile(filepath.Join(h.Cgroup(h.Own).Path, "cgroup.procs"), []byte(fmt.Sprint(sleep.Process.Pid)), 0)
	})
	for _, rel := range []string{leaf.Rel, mid.Rel} {
		if p, ok := cgroup.FromTask(h, ids[rel], sleep.Process.Pid); !ok || p != rel {
			t.Errorf("id %d from the task in %s = %q, %v; want %s", ids[rel], leaf.Rel, p, ok, rel)
		}
	}
	if p, ok := cgroup.FromTask(h, 1<<62, sleep.Process.Pid); ok {
		t.Errorf("an unknown id from the task = %q", p)
	}
	if p, ok := h.TaskPaths().Path(1<<62, sleep.Process.Pid); ok {
		t.Errorf("Path(unknown id) = %q", p)
	}

	sleep.Process.Kill()
	sleep.Wait()
	if err := leaf.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := leaf.Mkdir(); err != nil { // testenv's cleanup removes it again
		t.Fatal(err)
	}
	if p, ok := h.TaskPaths().Path(ids[leaf.Rel], 0); ok {
		t.Errorf("Path(%d) of a removed cgroup = %q", ids[leaf.Rel], p)
	}
}
