package readout

import (
	"errors"
	"fmt"
	"path"
	"sort"

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
	visited, err := h.walkTree(c, order)
	if err != nil {
		return nil, err
	}
	if visited > uint64(h.nodes.MaxEntries()) {
		return nil, fmt.Errorf("cgroup %s: its %d cgroups do not fit the tree map of %d: load with a larger --max-cgroups",
			c.Rel, visited, h.nodes.MaxEntries())
	}
	nodes, err := readNodes(h.nodes, int(visited))
	if err != nil {
		return nil, err
	}
	return paths(nodes, nodes[0].Id, c.Rel), nil
}

// walkTree runs the tree iterator over c and returns the number of cgroups
// it visited.
func (h *Handle) walkTree(c cgroup.Cgroup, order cgroupiter.Order) (visited uint64, err error) {
	out, err := cgroupiter.ReadOnce(h.tree, c, order)
	if err != nil {
		return 0, err
	}
	var session uint64
	if _, err := fmt.Sscanf(string(out), "session: %d, visited: %d", &session, &visited); err != nil || visited == 0 {
		return 0, fmt.Errorf("walking cgroup %s: unexpected output %q", c.Rel, out)
	}
	return visited, nil
}

// readNodes reads the first n slots of the tree map.
func readNodes(m *ebpf.Map, n int) ([]bpf.CgrstatTreeNode, error) {
	keys := make([]uint32, n)
	vals := make([]bpf.CgrstatTreeNode, n)
	var cursor ebpf.MapBatchCursor
	for got := 0; got < n; {
		k, err := m.BatchLookup(&cursor, keys[got:], vals[got:], nil)
		got += k
		if err != nil && !(errors.Is(err, ebpf.ErrKeyNotExist) && got == n) {
			return nil, fmt.Errorf("reading the tree map (%d of %d): %w", got, n, err)
		}
	}
	return vals, nil
}

// paths orders the nodes below top depth-first and names them.
func paths(nodes []bpf.CgrstatTreeNode, top uint64, topPath string) []Member {
	children := map[uint64][]uint64{}
	names := make(map[uint64]string, len(nodes))
	for _, n := range nodes {
		names[n.Id] = cString(n.Name[:])
		if n.Id != top {
			children[n.ParentId] = append(children[n.ParentId], n.Id)
		}
	}
	out := make([]Member, 0, len(nodes))
	parents := make(map[uint64]uint64, len(nodes))
	figures := make(map[uint64]*bpf.CgrstatMemcgFigures, len(nodes))
	for i, n := range nodes {
		parents[n.Id] = n.ParentId
		figures[n.Id] = &nodes[i].Fig
	}
	// The tree is built here, once: rows carry their parent and depth, and
	// no reader rebuilds them from the paths.
	var visit func(id uint64, p string, up, depth int)
	visit = func(id uint64, p string, up, depth int) {
		me := len(out)
		out = append(out, Member{ID: id, Path: p, Parent: parents[id], Up: up, Depth: depth, Figures: *figures[id]})
		kids := children[id]
		sort.Slice(kids, func(i, j int) bool { return names[kids[i]] < names[kids[j]] })
		for _, k := range kids {
			visit(k, path.Join(p, names[k]), me, depth+1)
		}
	}
	visit(top, topPath, -1, Depth(topPath))
	return out
}

func cString(b []int8) string {
	s := make([]byte, 0, 32)
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
