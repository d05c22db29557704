package readout

import (
	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
)

// Node is a cgroup as the tree walk wrote it, for the pure tests of the
// external test package (whose kernel tests need testenv, which imports
// this package): decodeChunk and paths hold it in a Member, the name in
// its Path.
type Node struct {
	ID, Parent uint64
	Fig        bpf.CgrstatMemcgFigures
	Name       string
}

func members(nodes []Node) []Member {
	out := make([]Member, len(nodes))
	for i, n := range nodes {
		out[i] = Member{ID: n.ID, Parent: n.Parent, Figures: n.Fig, Path: n.Name}
	}
	return out
}

// Paths is paths of a copy of nodes (paths works in place).
func Paths(nodes []Node, topPath string) []Member { return paths(members(nodes), topPath) }

// DecodeChunk is decodeChunk.
func DecodeChunk(nodes []Node, chunk []byte) ([]Node, error) {
	got, err := decodeChunk(members(nodes), chunk)
	if err != nil {
		return nil, err
	}
	out := make([]Node, len(got))
	for i, m := range got {
		out[i] = Node{ID: m.ID, Parent: m.Parent, Fig: m.Figures, Name: m.Path}
	}
	return out, nil
}

// ReadAll is readAll of a map of uint64 values, its first batch of first
// entries.
func ReadAll(m *ebpf.Map, first int) (keys, vals []uint64, n int, err error) {
	defer func(was int) { firstBatch = was }(firstBatch)
	firstBatch = first
	return readAll[uint64](m, nil, nil)
}
