package check

import (
	"fmt"

	"github.com/cgrstat/cgrstat/pkg/reclaim"
	"github.com/cgrstat/cgrstat/pkg/spec"
)

// Invariant is one property check verifies, for one cgroup.
type Invariant struct {
	Cgroup string `json:"cgroup"`
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail,omitempty"`
}

// Names of the invariants.
const (
	LeafReclaimed = "stressed leaf has delay > 0 and count > 0"
	SumOfChildren = "equals the sum of its children"
	AtMostParent  = "at most its parent"
)

// Verify checks the stats of a tree: stats maps each spec path ("test",
// "test/child1") to its stat, and parent is the stat of the tree's parent.
func Verify(s *spec.Spec, stats map[string]reclaim.Stat, parent reclaim.Stat) []Invariant {
	var out []Invariant
	_ = s.Walk(func(rel string, n *spec.Node) error {
		if n.IsLeaf() {
			out = append(out, leafInvariant(rel, stats[rel]))
			return nil
		}
		var sum reclaim.Stat
		for _, ch := range n.Children {
			sum = plus(sum, stats[rel+"/"+ch.Name])
		}
		out = append(out, compare(rel, SumOfChildren, stats[rel], sum, equal))
		return nil
	})
	top := s.Root.Name
	return append(out, compare(top, AtMostParent, stats[top], parent, atMost))
}

func leafInvariant(rel string, st reclaim.Stat) Invariant {
	inv := Invariant{Cgroup: rel, Name: LeafReclaimed, Pass: st.DelayNS > 0 && st.Count > 0}
	if !inv.Pass {
		inv.Detail = fmt.Sprintf("delay %d ns, count %d", st.DelayNS, st.Count)
	}
	return inv
}

func plus(a, b reclaim.Stat) reclaim.Stat {
	a.DelayNS += b.DelayNS
	a.Count += b.Count
	a.Reclaimed += b.Reclaimed
	return a
}

func equal(a, b uint64) bool  { return a == b }
func atMost(a, b uint64) bool { return a <= b }

func compare(rel, name string, got, want reclaim.Stat, ok func(a, b uint64) bool) Invariant {
	inv := Invariant{Cgroup: rel, Name: name, Pass: true}
	for _, f := range []struct {
		field     string
		got, want uint64
	}{
		{"total_vmscan_delay", got.DelayNS, want.DelayNS},
		{"vmscan_count", got.Count, want.Count},
		{"nr_reclaimed", got.Reclaimed, want.Reclaimed},
	} {
		if !ok(f.got, f.want) {
			inv.Pass = false
			inv.Detail += fmt.Sprintf("%s %d vs %d; ", f.field, f.got, f.want)
		}
	}
	return inv
}
