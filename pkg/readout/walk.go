package readout

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/cgroupiter"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// Member is one cgroup of a subtree.
type Member struct {
	ID     uint64
	Path   string // relative to the hierarchy's root
	Parent uint64
	// Up is the index of the parent's member in the same walk, -1 for the
	// top; Depth is the path's components below the hierarchy's root.
	Up, Depth int
	// Figures are the kernel's own counters of the cgroup, read in the walk.
	Figures bpf.CgrstatMemcgFigures
}

// Members lists c and every cgroup below it, parents before children and
// siblings by name. One walk in the kernel (the tree iterator) replaces a
// readdir and a stat per cgroup, which cost more than reading the stats.
func (h *Handle) Members(c cgroup.Cgroup) ([]Member, error) {
	return h.walk(c, cgroupiter.DescendantsPre)
}

// walkSelf is c's member alone: its id, parent and the kernel's figures,
// from a walk that visits c only.
func (h *Handle) walkSelf(c cgroup.Cgroup) (Member, error) {
	m, err := h.walk(c, cgroupiter.SelfOnly)
	if err != nil {
		return Member{}, err
	}
	return m[0], nil
}

// walk runs the tree iterator over c in order and names what it visited.
func (h *Handle) walk(c cgroup.Cgroup, order cgroupiter.Order) ([]Member, error) {
	unlock, err := lockWalk(h.Path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	visited, chunks, err := h.walkTree(c, order)
	if err != nil {
		return nil, err
	}
	nodes, err := readChunks(h.chunks, chunks, visited)
	if err != nil {
		return nil, err
	}
	if len(nodes) != visited {
		return nil, fmt.Errorf("cgroup %s: the tree walk visited %d cgroups but had room for %d (%d chunks)",
			c.Rel, visited, len(nodes), chunks)
	}
	return paths(nodes, c.Rel), nil
}

// walkTree runs the tree iterator over c and returns the number of cgroups
// it visited and of chunks it wrote.
func (h *Handle) walkTree(c cgroup.Cgroup, order cgroupiter.Order) (visited, chunks int, err error) {
	out, err := cgroupiter.ReadOnce(h.tree, c, order)
	if err != nil {
		return 0, 0, err
	}
	var session uint64
	if _, err := fmt.Sscanf(string(out), "session: %d, visited: %d, chunks: %d", &session, &visited, &chunks); err != nil || visited == 0 {
		return 0, 0, fmt.Errorf("walking cgroup %s: unexpected output %q", c.Rel, out)
	}
	return visited, chunks, nil
}

// readChunks reads and decodes chunks 0 to n-1 of the tree map, which
// hold about visited nodes. Chunks past n are an earlier, larger walk's.
// Each member's Path is its name until paths names it.
func readChunks(m *ebpf.Map, n, visited int) ([]Member, error) {
	buf := make([]byte, m.ValueSize())
	nodes := make([]Member, 0, visited)
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
// tree_node, then the name, NUL-terminated and padded to 8 bytes. A
// node's Path is its name.
func decodeChunk(nodes []Member, chunk []byte) ([]Member, error) {
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
		n := Member{ID: u(0), Parent: u(1), Figures: bpf.CgrstatMemcgFigures{
			High: u(2), Max: u(3), Oom: u(4), OomKill: u(5), Failcnt: u(6), PsiSomeNs: u(7), PsiFullNs: u(8),
			Flags: le.Uint32(data[72:]),
		}}
		name := data[nodeBytes:]
		end := bytes.IndexByte(name, 0)
		if end < 0 {
			return nil, fmt.Errorf("node %d of %d: the name has no end", k, count)
		}
		n.Path = string(name[:end])
		nodes = append(nodes, n)
		data = data[min(len(data), nodeBytes+(end+8)&^7):]
	}
	return nodes, nil
}

// paths orders the nodes depth-first, siblings by name, and names them
// below topPath: each node's Path is its name on the way in, its path on
// the way out. The walk visits parents before children (pre-order), so
// nodes[0] is the top and a child's parent comes before it.
//
// It works in place and puts every path in one buffer: read runs without
// the garbage collector (cmd/cgrstat collectLate), so each byte allocated
// is a fresh page touched, and a second array of 10,000 members (1 MB)
// and a string per path cost about 300 page faults of a read --all.
func paths(nodes []Member, topPath string) []Member {
	if len(nodes) == 0 {
		return nil
	}
	// The children of node i are kids[first[i]:first[i+1]] (every node but
	// the top is a child of one before it). In the walk's pre-order a
	// node's parent is on the path from the top to the node before it,
	// found there without a map of every id; in any other order, by a map.
	first := make([]int32, len(nodes)+1)
	parent := make([]int32, len(nodes))
	path := []int32{0}
	var index map[uint64]int32
	for i := 1; i < len(nodes); i++ {
		for len(path) > 1 && nodes[path[len(path)-1]].ID != nodes[i].Parent {
			path = path[:len(path)-1]
		}
		if nodes[path[len(path)-1]].ID == nodes[i].Parent {
			parent[i] = path[len(path)-1]
		} else {
			if index == nil {
				index = make(map[uint64]int32, len(nodes))
				for j := range nodes {
					index[nodes[j].ID] = int32(j)
				}
			}
			parent[i] = index[nodes[i].Parent]
			path = append(path, parent[i])
		}
		path = append(path, int32(i))
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
	// order[k] is the node at row k; row[i] node i's row.
	order := make([]int32, 0, len(nodes))
	row := make([]int32, len(nodes))
	stack := []int32{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		row[i] = int32(len(order))
		order = append(order, i)
		ks := kids[first[i]:first[i+1]]
		// Pushed in reverse name order: the first by name pops first.
		slices.SortFunc(ks, func(a, b int32) int { return strings.Compare(nodes[b].Path, nodes[a].Path) })
		stack = append(stack, ks...)
	}
	// The paths' bytes, as join makes them (exact unless a name is empty).
	size := make([]int32, len(nodes))
	size[0] = int32(len(topPath))
	total := 0
	for i := 1; i < len(nodes); i++ {
		sep := int32(1)
		if parent[i] == 0 && (topPath == "" || strings.HasSuffix(topPath, "/")) {
			sep = 0
		}
		size[i] = size[parent[i]] + sep + int32(len(nodes[i].Path))
		total += int(size[i])
	}
	var buf strings.Builder
	buf.Grow(total)
	// The tree is built here, once: rows carry their parent and depth, and
	// no reader rebuilds them from the paths. Parents come before their
	// children in row order, so a parent is named before its children.
	nodes[0].Path, nodes[0].Up, nodes[0].Depth = topPath, -1, Depth(topPath)
	for _, i := range order[1:] {
		n, up := &nodes[i], &nodes[parent[i]]
		from := buf.Len()
		join(&buf, up.Path, n.Path)
		n.Path, n.Up, n.Depth = buf.String()[from:], int(row[parent[i]]), up.Depth+1
	}
	// Each node to its row, swapping along the permutation's cycles.
	for i := range nodes {
		for j := row[i]; j != int32(i); j = row[i] {
			nodes[i], nodes[j] = nodes[j], nodes[i]
			row[i], row[j] = row[j], row[i]
		}
	}
	return nodes
}

// join writes path.Join of a cgroup's path and a child's name, which has
// no slash and is neither . nor ..: without path.Join's cleaning.
func join(b *strings.Builder, dir, name string) {
	switch {
	case dir == "":
	case strings.HasSuffix(dir, "/"):
		b.WriteString(dir)
	default:
		b.WriteString(dir)
		b.WriteByte('/')
	}
	b.WriteString(name)
}
