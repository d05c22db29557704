package check

import (
	"strings"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/reclaim"
	"github.com/cgrstat/cgrstat/pkg/spec"
)

// consistent returns stats for the default spec that satisfy every
// invariant: distinct leaf values, non-leaves the sums of their children,
// and a parent above the top.
func consistent() (map[string]reclaim.Stat, reclaim.Stat) {
	leaf := func(d, c, r uint64) reclaim.Stat { return reclaim.Stat{DelayNS: d, Count: c, Reclaimed: r} }
	m := map[string]reclaim.Stat{
		"test/child1/child1_1": leaf(1_000, 1, 10),
		"test/child1/child1_2": leaf(20_000, 2, 200),
		"test/child2/child2_1": leaf(300_000, 3, 3_000),
		"test/child2/child2_2": leaf(4_000_000, 4, 40_000),
	}
	m["test/child1"] = plus(m["test/child1/child1_1"], m["test/child1/child1_2"])
	m["test/child2"] = plus(m["test/child2/child2_1"], m["test/child2/child2_2"])
	m["test"] = plus(m["test/child1"], m["test/child2"])
	parent := plus(m["test"], leaf(5, 1, 7)) // something else below the parent reclaimed too
	return m, parent
}

// byKey indexes invariants by cgroup and name.
func byKey(invs []Invariant) map[[2]string]Invariant {
	out := map[[2]string]Invariant{}
	for _, inv := range invs {
		out[[2]string{inv.Cgroup, inv.Name}] = inv
	}
	return out
}

func TestVerifyAllPass(t *testing.T) {
	stats, parent := consistent()
	invs := Verify(spec.Default(), stats, parent)
	// 4 leaves, 3 sums, 1 parent comparison.
	if len(invs) != 8 {
		t.Fatalf("got %d invariants, want 8: %+v", len(invs), invs)
	}
	for _, inv := range invs {
		if !inv.Pass || inv.Detail != "" {
			t.Errorf("invariant %+v failed on consistent stats", inv)
		}
	}
	k := byKey(invs)
	for _, want := range [][2]string{
		{"test", SumOfChildren}, {"test/child1", SumOfChildren}, {"test/child2", SumOfChildren},
		{"test/child1/child1_1", LeafReclaimed}, {"test/child1/child1_2", LeafReclaimed},
		{"test/child2/child2_1", LeafReclaimed}, {"test/child2/child2_2", LeafReclaimed},
		{"test", AtMostParent},
	} {
		if _, ok := k[want]; !ok {
			t.Errorf("no invariant %q for %s", want[1], want[0])
		}
	}
	// The parent may equal the top: nothing else reclaimed.
	if invs := Verify(spec.Default(), stats, stats["test"]); !allPass(invs) {
		t.Errorf("a parent equal to the top fails: %+v", invs)
	}
}

func TestVerifyNonLeafOffByOne(t *testing.T) {
	counters := []struct {
		name string
		bump func(*reclaim.Stat, int)
	}{
		{"total_vmscan_delay", func(s *reclaim.Stat, d int) { s.DelayNS += uint64(d) }},
		{"vmscan_count", func(s *reclaim.Stat, d int) { s.Count += uint64(d) }},
		{"nr_reclaimed", func(s *reclaim.Stat, d int) { s.Reclaimed += uint64(d) }},
	}
	for _, node := range []string{"test/child1", "test/child2", "test"} {
		for _, c := range counters {
			for _, d := range []int{+1, -1} {
				stats, parent := consistent()
				s := stats[node]
				c.bump(&s, d)
				stats[node] = s
				invs := byKey(Verify(spec.Default(), stats, parent))
				inv := invs[[2]string{node, SumOfChildren}]
				if inv.Pass {
					t.Errorf("%s with %s %+d: sum of children passes", node, c.name, d)
					continue
				}
				if !strings.HasPrefix(inv.Detail, c.name+" ") {
					t.Errorf("%s with %s %+d: detail %q does not name the counter first", node, c.name, d, inv.Detail)
				}
				for _, other := range counters {
					if other.name != c.name && strings.Contains(inv.Detail, other.name) {
						t.Errorf("%s with %s %+d: detail %q names %s too", node, c.name, d, inv.Detail, other.name)
					}
				}
				// The node is a child of its own parent's sum, which fails
				// as well; nothing else does (the parent of the tree has
				// room above the top).
				mayFail := map[[2]string]bool{{node, SumOfChildren}: true}
				if i := strings.LastIndex(node, "/"); i >= 0 {
					mayFail[[2]string{node[:i], SumOfChildren}] = true
				}
				for k, other := range invs {
					if other.Pass == mayFail[k] {
						t.Errorf("%s with %s %+d: %+v; want exactly %v to fail", node, c.name, d, other, mayFail)
					}
				}
			}
		}
	}
}

func TestVerifyDetailNamesValues(t *testing.T) {
	stats, parent := consistent()
	s := stats["test/child1"]
	s.Count++
	stats["test/child1"] = s
	inv := byKey(Verify(spec.Default(), stats, parent))[[2]string{"test/child1", SumOfChildren}]
	if want := "vmscan_count 4 vs 3"; !strings.Contains(inv.Detail, want) {
		t.Errorf("detail %q, want it to contain %q (got vs sum of children)", inv.Detail, want)
	}
}

func TestVerifyLeafWithoutReclaim(t *testing.T) {
	tests := []struct {
		name   string
		stat   reclaim.Stat
		detail string
	}{
		{"zero delay", reclaim.Stat{DelayNS: 0, Count: 2, Reclaimed: 5}, "delay 0 ns, count 2"},
		{"zero count", reclaim.Stat{DelayNS: 100, Count: 0, Reclaimed: 5}, "delay 100 ns, count 0"},
		{"nothing at all", reclaim.Stat{}, "delay 0 ns, count 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stats, parent := consistent()
			// Keep the sums right, so that only the leaf invariant can fail.
			old := stats["test/child2/child2_1"]
			stats["test/child2/child2_1"] = tt.stat
			for _, p := range []string{"test/child2", "test"} {
				s := stats[p]
				s.DelayNS += tt.stat.DelayNS - old.DelayNS
				s.Count += tt.stat.Count - old.Count
				s.Reclaimed += tt.stat.Reclaimed - old.Reclaimed
				stats[p] = s
			}
			invs := Verify(spec.Default(), stats, parent)
			for _, inv := range invs {
				isLeaf := inv.Cgroup == "test/child2/child2_1" && inv.Name == LeafReclaimed
				if inv.Pass == isLeaf {
					t.Errorf("%+v: want only the leaf invariant of child2_1 to fail", inv)
				}
				if isLeaf && inv.Detail != tt.detail {
					t.Errorf("detail %q, want %q", inv.Detail, tt.detail)
				}
			}
		})
	}
}

func TestVerifyTopAboveParent(t *testing.T) {
	stats, _ := consistent()
	top := stats["test"]
	for _, tt := range []struct {
		counter string
		parent  reclaim.Stat
	}{
		{"total_vmscan_delay", reclaim.Stat{DelayNS: top.DelayNS - 1, Count: top.Count, Reclaimed: top.Reclaimed}},
		{"vmscan_count", reclaim.Stat{DelayNS: top.DelayNS, Count: top.Count - 1, Reclaimed: top.Reclaimed}},
		{"nr_reclaimed", reclaim.Stat{DelayNS: top.DelayNS, Count: top.Count, Reclaimed: top.Reclaimed - 1}},
	} {
		invs := Verify(spec.Default(), stats, tt.parent)
		for _, inv := range invs {
			isTop := inv.Cgroup == "test" && inv.Name == AtMostParent
			if inv.Pass == isTop {
				t.Errorf("parent below the top in %s: %+v; want only %q of test to fail", tt.counter, inv, AtMostParent)
			}
			if isTop && !strings.HasPrefix(inv.Detail, tt.counter+" ") {
				t.Errorf("parent below the top in %s: detail %q does not name it", tt.counter, inv.Detail)
			}
		}
	}
	// A parent with nothing at all (e.g. its stat file was never flushed).
	invs := byKey(Verify(spec.Default(), stats, reclaim.Stat{}))
	if inv := invs[[2]string{"test", AtMostParent}]; inv.Pass || strings.Count(inv.Detail, " vs ") != 3 {
		t.Errorf("empty parent: %+v, want a failure naming all three counters", inv)
	}
}

// TestVerifyCustomSpec checks that Verify follows the spec, not the
// default tree's shape: a one-node spec has one leaf and the top.
func TestVerifyCustomSpec(t *testing.T) {
	s, err := spec.Parse([]byte("name: solo\n"), "solo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st := reclaim.Stat{DelayNS: 10, Count: 1, Reclaimed: 1}
	invs := Verify(s, map[string]reclaim.Stat{"solo": st}, st)
	if len(invs) != 2 || !allPass(invs) || invs[0].Name != LeafReclaimed || invs[1].Name != AtMostParent {
		t.Errorf("Verify(solo) = %+v", invs)
	}
}

func TestSummary(t *testing.T) {
	r := &Report{Flush: "walk", Cgroup: 1, Invariants: []Invariant{{Pass: true}, {Pass: false}, {Pass: true}}}
	if got, want := r.Summary(), "FAIL: 2 of 3 invariants hold (flush mode walk, cgroup v1)"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	r = &Report{Flush: "fentry", Cgroup: 2, Invariants: []Invariant{{Pass: true}}}
	if got, want := r.Summary(), "PASS: 1 of 1 invariants hold (flush mode fentry, cgroup v2)"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}
