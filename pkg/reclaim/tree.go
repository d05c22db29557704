package reclaim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
)

// Member is one cgroup of a subtree.
type Member struct {
	ID   uint64
	Path string // relative to the hierarchy's root
}

// Members lists c and every cgroup below it, parents before children and
// siblings by name. One walk in the kernel (the tree iterator) replaces a
// readdir and a stat per cgroup, which cost more than reading the stats.
func Members(p *loader.Pinned, c cgroup.Cgroup) ([]Member, error) {
	session, visited, err := walkTree(p, c)
	if err != nil {
		return nil, err
	}
	nodes, err := takeSession(p.Nodes, session)
	if err != nil {
		return nil, err
	}
	if uint64(len(nodes)) != visited {
		return nil, fmt.Errorf("cgroup %s: only %d of its %d cgroups fit the tree map: load with a larger --max-cgroups", c.Rel, len(nodes), visited)
	}
	top, err := cgroup.ID(c)
	if err != nil {
		return nil, err
	}
	return paths(nodes, top, c.Rel), nil
}

// walkTree runs the tree iterator over c and returns its session and the
// number of cgroups it visited.
func walkTree(p *loader.Pinned, c cgroup.Cgroup) (session, visited uint64, err error) {
	f, err := os.Open(c.Path)
	if err != nil {
		return 0, 0, fmt.Errorf("opening cgroup %s: %w", c.Rel, err)
	}
	defer f.Close()
	it, err := pin.CgroupIter(p.Tree, int(f.Fd()), pin.DescendantsPre)
	if err != nil {
		return 0, 0, fmt.Errorf("cgroup %s: %w", c.Rel, err)
	}
	defer it.Close()
	r, err := it.Open()
	if err != nil {
		return 0, 0, fmt.Errorf("walking cgroup %s: %w", c.Rel, err)
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		return 0, 0, fmt.Errorf("walking cgroup %s: %w", c.Rel, err)
	}
	if _, err := fmt.Sscanf(string(out), "session: %d, visited: %d", &session, &visited); err != nil {
		return 0, 0, fmt.Errorf("walking cgroup %s: unexpected output %q", c.Rel, out)
	}
	return session, visited, nil
}

// takeSession reads the nodes one walk stored, and deletes them.
func takeSession(m *ebpf.Map, session uint64) (map[uint64]bpf.CgrstatTreeNode, error) {
	nodes := map[uint64]bpf.CgrstatTreeNode{}
	var mine []bpf.CgrstatTreeKey
	keys := make([]bpf.CgrstatTreeKey, batchSize)
	vals := make([]bpf.CgrstatTreeNode, batchSize)
	var cursor ebpf.MapBatchCursor
	for done := false; !done; {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		done = errors.Is(err, ebpf.ErrKeyNotExist)
		if err != nil && !done {
			return nil, fmt.Errorf("reading the tree map: %w", err)
		}
		for i := 0; i < n; i++ {
			if keys[i].Session == session {
				nodes[keys[i].Cgid] = vals[i]
				mine = append(mine, keys[i])
			}
		}
	}
	if len(mine) > 0 {
		if _, err := m.BatchDelete(mine, nil); err != nil {
			return nil, fmt.Errorf("clearing the tree map: %w", err)
		}
	}
	return nodes, nil
}

// paths orders the nodes below top depth-first and names them.
func paths(nodes map[uint64]bpf.CgrstatTreeNode, top uint64, topPath string) []Member {
	children := map[uint64][]uint64{}
	for id, n := range nodes {
		if id != top {
			children[n.ParentId] = append(children[n.ParentId], id)
		}
	}
	name := func(id uint64) string {
		n := nodes[id]
		b := make([]byte, 0, len(n.Name))
		for _, c := range n.Name {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		return string(b)
	}
	var out []Member
	var visit func(id uint64, p string)
	visit = func(id uint64, p string) {
		out = append(out, Member{ID: id, Path: p})
		kids := children[id]
		sort.Slice(kids, func(i, j int) bool { return name(kids[i]) < name(kids[j]) })
		for _, k := range kids {
			visit(k, path.Join(p, name(k)))
		}
	}
	visit(top, topPath)
	return out
}
