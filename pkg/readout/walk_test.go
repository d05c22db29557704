package readout_test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

func node(id, parent uint64, name string) bpf.CgrstatTreeNode {
	n := bpf.CgrstatTreeNode{Id: id, ParentId: parent}
	for i, c := range []byte(name) {
		n.Name[i] = int8(c)
	}
	return n
}

func TestPaths(t *testing.T) {
	nodes := []bpf.CgrstatTreeNode{
		node(10, 1, "test"), // the top: its parent is outside the walk
		node(12, 10, "b"),
		node(11, 10, "a"),
		node(13, 11, "a.x"),
		node(14, 12, "z"),
	}
	got := readout.Paths(nodes, 10, "/own/test")
	want := []readout.Member{{10, "/own/test", 1, -1, 2, bpf.CgrstatMemcgFigures{}}, {11, "/own/test/a", 10, 0, 3, bpf.CgrstatMemcgFigures{}},
		{13, "/own/test/a/a.x", 11, 1, 4, bpf.CgrstatMemcgFigures{}}, {12, "/own/test/b", 10, 0, 3, bpf.CgrstatMemcgFigures{}},
		{14, "/own/test/b/z", 12, 3, 4, bpf.CgrstatMemcgFigures{}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paths = %v, want %v", got, want)
	}
}

// TestKernelMembers checks the in-kernel tree walk against cgroupfs.
func TestKernelMembers(t *testing.T) {
	p, h := testenv.Load(t, loader.Walk, 64)
	top := h.DefaultParent().Child(fmt.Sprintf("cgrstat-%d-members", os.Getpid()))
	tree := []cgroup.Cgroup{top, top.Child("b"), top.Child("a"), top.Child("a").Child("x.y")}
	for _, c := range tree {
		if err := c.Mkdir(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Remove() })
	}
	var want []readout.Member
	index := map[string]int{}
	if err := cgroup.Walk(top, func(c cgroup.Cgroup) error {
		id, err := cgroup.ID(c)
		parent, perr := cgroup.ID(cgroup.Cgroup{Rel: path.Dir(c.Rel), Path: filepath.Dir(c.Path)})
		up, ok := index[path.Dir(c.Rel)]
		if !ok || c.Rel == top.Rel {
			up = -1
		}
		index[c.Rel] = len(want)
		want = append(want, readout.Member{ID: id, Path: c.Rel, Parent: parent, Up: up, Depth: readout.Depth(c.Rel)})
		if err == nil {
			err = perr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second walk overwrites the first
		got, err := p.Members(top)
		for i := range got {
			got[i].Figures = bpf.CgrstatMemcgFigures{} // the kernel's counters: see TestKernelMaxAndHigh
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("walk %d: Members = %v, %v; cgroupfs has %v", i, got, err, want)
		}
	}
	// A map too small for the tree is an error, not a short answer.
	big := top.Child("a")
	for i := 0; i < 70; i++ {
		c := big.Child(fmt.Sprintf("n%d", i))
		if err := c.Mkdir(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Remove() })
	}
	if _, err := p.Members(top); err == nil {
		t.Fatal("Members of 74 cgroups with a 64-entry map: no error")
	}
}
