package readout_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// chunk encodes nodes as the tree walk writes them into a struct tree_chunk.
func chunk(nodes ...readout.Node) []byte {
	var c bpf.CgrstatTreeChunk
	var data []byte
	for _, n := range nodes {
		data = binary.NativeEndian.AppendUint64(data, n.ID)
		data = binary.NativeEndian.AppendUint64(data, n.Parent)
		data, _ = binary.Append(data, binary.NativeEndian, n.Fig)
		data = append(data, n.Name...)
		data = append(data, make([]byte, 8-len(n.Name)%8)...) // the NUL and the padding
	}
	c.Used, c.Nodes = uint32(len(data)), uint32(len(nodes))
	copy(c.Data[:], data)
	b, _ := binary.Append(nil, binary.NativeEndian, c)
	return b
}

func TestDecodeChunk(t *testing.T) {
	fig := bpf.CgrstatMemcgFigures{High: 1, Max: 2, Oom: 3, OomKill: 4, Failcnt: 5, PsiSomeNs: 6, PsiFullNs: 7, Flags: 3}
	long := strings.Repeat("x", 255)
	in := []readout.Node{{ID: 10, Parent: 1, Fig: fig, Name: "test"}, {ID: 11, Parent: 10, Name: "abcdefgh"},
		{ID: 12, Parent: 10, Fig: fig, Name: long}, {ID: 13, Parent: 10, Fig: fig}}
	got, err := readout.DecodeChunk([]readout.Node{{ID: 9}}, chunk(in...))
	if err != nil || !reflect.DeepEqual(got, append([]readout.Node{{ID: 9}}, in...)) {
		t.Fatalf("decodeChunk = %v, %v; want %v after the node given", got, err, in)
	}
	bad := chunk(in...)
	binary.NativeEndian.PutUint32(bad[4:], 5) // one node more than written
	if _, err := readout.DecodeChunk(nil, bad); err == nil {
		t.Fatal("a chunk that says it holds more nodes than it does: no error")
	}
	binary.NativeEndian.PutUint32(bad, 5000)
	if _, err := readout.DecodeChunk(nil, bad); err == nil {
		t.Fatal("a chunk that says it used more bytes than it has: no error")
	}
}

func TestPaths(t *testing.T) {
	nodes := []readout.Node{
		{ID: 10, Parent: 1, Name: "test"}, // the top: its parent is outside the walk
		{ID: 12, Parent: 10, Name: "b"},
		{ID: 11, Parent: 10, Name: "a"},
		{ID: 13, Parent: 11, Name: "a.x"},
		{ID: 14, Parent: 12, Name: "z"},
		{ID: 15, Parent: 10, Name: "a0"},
	}
	got := readout.Paths(nodes, "/own/test")
	want := []readout.Member{{10, "/own/test", 1, -1, 2, bpf.CgrstatMemcgFigures{}}, {11, "/own/test/a", 10, 0, 3, bpf.CgrstatMemcgFigures{}},
		{13, "/own/test/a/a.x", 11, 1, 4, bpf.CgrstatMemcgFigures{}}, {15, "/own/test/a0", 10, 0, 3, bpf.CgrstatMemcgFigures{}},
		{12, "/own/test/b", 10, 0, 3, bpf.CgrstatMemcgFigures{}}, {14, "/own/test/b/z", 12, 4, 4, bpf.CgrstatMemcgFigures{}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paths = %v, want %v", got, want)
	}
	// The same tree as the kernel's walk lists it (pre-order: each parent
	// on the path to the node before), and with the deepest one last.
	for _, order := range [][]int{{0, 1, 4, 2, 3, 5}, {0, 2, 3, 5, 1, 4}} {
		var walked []readout.Node
		for _, i := range order {
			walked = append(walked, nodes[i])
		}
		if got := readout.Paths(walked, "/own/test"); !reflect.DeepEqual(got, want) {
			t.Fatalf("paths of %v = %v, want %v", order, got, want)
		}
	}
	if got := readout.Paths(nodes[:1], "/"); len(got) != 1 || got[0].Path != "/" {
		t.Fatalf("paths of the root alone = %v", got)
	}
	if got := readout.Paths(nodes[:2], "/"); len(got) != 2 || got[1].Path != "/b" || got[1].Depth != 1 {
		t.Fatalf("paths below the root = %v", got)
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
	// Any tree, whatever --max-cgroups (64 here): 70 more cgroups with
	// names of NAME_MAX bytes fill several chunks; a smaller walk after it
	// reads only its own.
	big := top.Child("a")
	for i := 0; i < 70; i++ {
		c := big.Child(fmt.Sprintf("%03d%s", i, strings.Repeat("n", 252)))
		if err := c.Mkdir(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Remove() })
	}
	got, err := p.Members(top)
	if err != nil || len(got) != 74 {
		t.Fatalf("Members of 74 cgroups with --max-cgroups 64: %d, %v", len(got), err)
	}
	for i, m := range got[2:72] {
		if want := fmt.Sprintf("%s/%03d%s", big.Rel, i, strings.Repeat("n", 252)); m.Path != want || m.Up != 1 {
			t.Fatalf("member %d is %s under %d, want %s under 1", i+2, m.Path, m.Up, want)
		}
	}
	if got, err := p.Members(top.Child("b")); err != nil || len(got) != 1 || got[0].Path != top.Child("b").Rel {
		t.Fatalf("Members of a leaf after a larger walk: %v, %v", got, err)
	}
}

// TestKernelReadAllBatches reads hash maps whole as a copy of the stats map
// does, in batches that grow: 600 entries pass several batch sizes. A first
// batch of one entry is smaller than a bucket of two, which the kernel
// refuses (ENOSPC) until a batch is large enough: 64 entries in 64 buckets
// share some, and the first bucket read holds two or more about one time
// in four (the hash's seed is random), so 50 maps meet it all but surely.
func TestKernelReadAllBatches(t *testing.T) {
	testenv.Root(t)
	cases := []struct{ entries, first int }{{600, 16}, {0, 16}}
	for i := 0; i < 50; i++ {
		cases = append(cases, struct{ entries, first int }{64, 1})
	}
	for _, tt := range cases {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 8, ValueSize: 8, MaxEntries: uint32(max(tt.entries, 1))})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		for i := 0; i < tt.entries; i++ {
			if err := m.Put(uint64(i), uint64(1000+i)); err != nil {
				t.Fatal(err)
			}
		}
		keys, vals, n, err := readout.ReadAll(m, tt.first)
		if err != nil || n != tt.entries {
			t.Fatalf("%d entries, first batch %d: read %d, %v", tt.entries, tt.first, n, err)
		}
		seen := map[uint64]bool{}
		for i := 0; i < n; i++ {
			if vals[i] != 1000+keys[i] || keys[i] >= uint64(tt.entries) || seen[keys[i]] {
				t.Fatalf("%d entries, first batch %d: entry %d is %d: %d", tt.entries, tt.first, i, keys[i], vals[i])
			}
			seen[keys[i]] = true
		}
	}
}
