package reclaim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/cgroupiter"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// Member is one cgroup of a subtree.
type Member struct {
	ID     uint64
	Path   string // relative to the hierarchy's root
	Parent uint64
	// Figures are the kernel's own counters of the cgroup, read in the walk.
	Figures bpf.CgrstatMemcgFigures
}

// Members lists c and every cgroup below it, parents before children and
// siblings by name. One walk in the kernel (the tree iterator) replaces a
// readdir and a stat per cgroup, which cost more than reading the stats.
func Members(p *loader.Pinned, c cgroup.Cgroup) ([]Member, error) {
	unlock, err := lockTree(p)
	if err != nil {
		return nil, err
	}
	defer unlock()
	visited, chunks, err := walkTree(p, c)
	if err != nil {
		return nil, err
	}
	nodes, err := readChunks(p.Chunks, chunks)
	if err != nil {
		return nil, err
	}
	if len(nodes) != visited {
		return nil, fmt.Errorf("cgroup %s: the tree walk visited %d cgroups but had room for %d (%d chunks)",
			c.Rel, visited, len(nodes), chunks)
	}
	return paths(nodes, c.Rel), nil
}

// lockTree serializes walks, which all write tree_chunks from chunk 0.
func lockTree(p *loader.Pinned) (unlock func(), err error) {
	fd, err := unix.Open(p.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("locking the tree map: %w", err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("locking the tree map: %w", err)
	}
	return func() { unix.Close(fd) }, nil
}

// walkTree runs the tree iterator over c and returns the number of cgroups
// it visited and of chunks it wrote.
func walkTree(p *loader.Pinned, c cgroup.Cgroup) (visited, chunks int, err error) {
	out, err := cgroupiter.ReadOnce(p.Tree, c, cgroupiter.DescendantsPre)
	if err != nil {
		return 0, 0, err
	}
	var session uint64
	if _, err := fmt.Sscanf(string(out), "session: %d, visited: %d, chunks: %d", &session, &visited, &chunks); err != nil || visited == 0 {
		return 0, 0, fmt.Errorf("walking cgroup %s: unexpected output %q", c.Rel, out)
	}
	return visited, chunks, nil
}

// node is a cgroup as the tree walk wrote it.
type node struct {
	id, parent uint64
	fig        bpf.CgrstatMemcgFigures
	name       string
}

// readChunks reads and decodes chunks 0 to n-1 of the tree map. Chunks
// past n are an earlier, larger walk's.
func readChunks(m *ebpf.Map, n int) ([]node, error) {
	buf := make([]byte, m.ValueSize())
	var nodes []node
	for i := 0; i < n; i++ {
		if err := m.Lookup(uint32(i), buf); err != nil {
			return nil, fmt.Errorf("reading the tree map (chunk %d of %d): %w", i, n, err)
		}
		var err error
		if nodes, err = decodeChunk(nodes, buf); err != nil {
			return nil, fmt.Errorf("reading the tree map (chunk %d of %d): %w", i, n, err)
		}
	}
	return nodes, nil
}

var (
	chunkHeader = int(unsafe.Offsetof(bpf.CgrstatTreeChunk{}.Data))
	nodeBytes   = int(unsafe.Sizeof(bpf.CgrstatTreeNode{}))
)

// decodeChunk appends the nodes of one struct tree_chunk: each a struct
// tree_node, then the name, NUL-terminated and padded to 8 bytes.
func decodeChunk(nodes []node, chunk []byte) ([]node, error) {
	le := binary.NativeEndian
	used, count := int(le.Uint32(chunk)), int(le.Uint32(chunk[4:]))
	data := chunk[chunkHeader:]
	if used > len(data) {
		return nil, fmt.Errorf("%d bytes used of %d", used, len(data))
	}
	data = data[:used]
	for k := 0; k < count; k++ {
		if len(data) < nodeBytes {
			return nil, fmt.Errorf("node %d of %d is cut short", k, count)
		}
		u := func(i int) uint64 { return le.Uint64(data[8*i:]) }
		n := node{id: u(0), parent: u(1), fig: bpf.CgrstatMemcgFigures{
			High: u(2), Max: u(3), Oom: u(4), OomKill: u(5), Failcnt: u(6), PsiSomeNs: u(7), PsiFullNs: u(8),
			Flags: le.Uint32(data[72:]),
		}}
		name := data[nodeBytes:]
		end := bytes.IndexByte(name, 0)
		if end < 0 {
			return nil, fmt.Errorf("node %d of %d: the name has no end", k, count)
		}
		n.name = string(name[:end])
		nodes = append(nodes, n)
		data = data[min(len(data), nodeBytes+(end+8)&^7):]
	}
	return nodes, nil
}

// paths orders the nodes depth-first, siblings by name, and names them
// below topPath. The walk visits parents before children (pre-order), so
// nodes[0] is the top and a child's parent comes before it.
func paths(nodes []node, topPath string) []Member {
	if len(nodes) == 0 {
		return nil
	}
	index := make(map[uint64]int32, len(nodes))
	for i := range nodes {
		index[nodes[i].id] = int32(i)
	}
	// The children of node i are kids[first[i]:first[i+1]] (every node but
	// the top is a child of one before it).
	first := make([]int32, len(nodes)+1)
	parent := make([]int32, len(nodes))
	for i := 1; i < len(nodes); i++ {
		parent[i] = index[nodes[i].parent]
		first[parent[i]+1]++
	}
	for i := 1; i <= len(nodes); i++ {
		first[i] += first[i-1]
	}
	kids := make([]int32, len(nodes))
	next := slices.Clone(first)
	for i := 1; i < len(nodes); i++ {
		kids[next[parent[i]]] = int32(i)
		next[parent[i]]++
	}
	out := make([]Member, 0, len(nodes))
	pathOf := make([]string, len(nodes))
	pathOf[0] = topPath
	stack := []int32{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := &nodes[i]
		if i > 0 {
			pathOf[i] = join(pathOf[parent[i]], n.name)
		}
		out = append(out, Member{ID: n.id, Path: pathOf[i], Parent: n.parent, Figures: n.fig})
		ks := kids[first[i]:first[i+1]]
		// Pushed in reverse name order: the first by name pops first.
		slices.SortFunc(ks, func(a, b int32) int { return strings.Compare(nodes[b].name, nodes[a].name) })
		stack = append(stack, ks...)
	}
	return out
}

// join is path.Join for a cgroup's path and a child's name, which has no
// slash and is neither . nor ..: without path.Join's cleaning.
func join(dir, name string) string {
	switch {
	case dir == "":
		return name
	case strings.HasSuffix(dir, "/"):
		return dir + name
	}
	return dir + "/" + name
}
