package check

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/reclaim"
	"github.com/cgrstat/cgrstat/pkg/spec"
)

// reclaims makes a stat from memory-cgroup reclaim latencies, alternately
// limit and proactive, 10 pages each: one that satisfies Consistent.
func reclaims(ns ...uint64) reclaim.Stat {
	var s reclaim.Stat
	for i, v := range ns {
		s.Observe([]reclaim.Cause{reclaim.Max, reclaim.Proactive, reclaim.High}[i%3], v, 10, false) // max, proactive, high, ...
	}
	return s
}

// recorded makes a stat of reclaims of one cause.
func recorded(c reclaim.Cause, forced bool, ns ...uint64) reclaim.Stat {
	var s reclaim.Stat
	for _, v := range ns {
		s.Observe(c, v, 10, forced)
	}
	return s
}

var defaultLeaves = []string{"test/child1/child1_1", "test/child1/child1_2", "test/child2/child2_1", "test/child2/child2_2"}

// leafStats are distinct leaves of the default spec, in different buckets,
// with some direct reclaim and forced reclaim.
func leafStats() map[string]reclaim.Stat {
	m := map[string]reclaim.Stat{
		"test/child1/child1_1": reclaims(1_000),
		"test/child1/child1_2": reclaims(20_000, 25_000),
		"test/child2/child2_1": reclaims(300_000, 2_000, 2_100),
		"test/child2/child2_2": reclaims(4_000_000, 50_000, 60_000, 70_000),
	}
	for i, l := range defaultLeaves {
		s := m[l]
		s.Causes[reclaim.Direct] = reclaim.Counters{DelayNS: uint64(i) * 1000, Count: uint64(i), Reclaimed: uint64(i) * 3}
		s.Forced = s.Memcg() // each leaf's own limit or memory.reclaim
		m[l] = s
	}
	return m
}

// tree completes leaves into the stats of the default spec, non-leaves the
// sums of their children, and a parent above the top where something else
// reclaimed too.
func tree(leaves map[string]reclaim.Stat) (map[string]reclaim.Stat, reclaim.Stat) {
	m := map[string]reclaim.Stat{}
	for k, v := range leaves {
		m[k] = v
	}
	for _, n := range []struct{ node, a, b string }{
		{"test/child1", "test/child1/child1_1", "test/child1/child1_2"},
		{"test/child2", "test/child2/child2_1", "test/child2/child2_2"},
		{"test", "test/child1", "test/child2"},
	} {
		s, b := m[n.a], m[n.b]
		s.Add(&b)
		m[n.node] = s
	}
	parent := m["test"]
	other := reclaims(5, 9e9)
	parent.Add(&other)
	return m, parent
}

func consistentTree() (map[string]reclaim.Stat, reclaim.Stat) { return tree(leafStats()) }

// key is an invariant's cgroup and name.
type key [2]string

// byKey indexes invariants by cgroup and name.
func byKey(invs []Invariant) map[key]Invariant {
	out := map[key]Invariant{}
	for _, inv := range invs {
		out[key{inv.Cgroup, inv.Name}] = inv
	}
	return out
}

// failing lists the invariants that fail, sorted.
func failing(invs []Invariant) []key {
	var out []key
	for _, inv := range invs {
		if !inv.Pass {
			out = append(out, key{inv.Cgroup, inv.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

func sameKeys(a, b []key) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func sorted(keys ...key) []key {
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	return keys
}

func TestVerifyAllPass(t *testing.T) {
	stats, parent := consistentTree()
	invs := Verify(spec.Default(), stats, parent, reclaim.Max)
	// 4 leaves x 2, 3 non-leaves x 3, 1 parent comparison.
	if len(invs) != 18 {
		t.Fatalf("got %d invariants, want 18: %+v", len(invs), invs)
	}
	for _, inv := range invs {
		if !inv.Pass || inv.Detail != "" {
			t.Errorf("invariant %+v failed on consistent stats", inv)
		}
	}
	k := byKey(invs)
	for _, node := range []string{"test", "test/child1", "test/child2"} {
		for _, name := range []string{SumOfChildren, ForcedOverChildren, Consistent} {
			if _, ok := k[key{node, name}]; !ok {
				t.Errorf("no invariant %q for %s", name, node)
			}
		}
	}
	for _, leaf := range defaultLeaves {
		for _, name := range []string{LeafReclaimed, Consistent} {
			if _, ok := k[key{leaf, name}]; !ok {
				t.Errorf("no invariant %q for %s", name, leaf)
			}
		}
	}
	if _, ok := k[key{"test", AtMostParent}]; !ok {
		t.Errorf("no invariant %q for test", AtMostParent)
	}
	// The parent may equal the top: nothing else reclaimed.
	if invs := Verify(spec.Default(), stats, stats["test"], reclaim.Max); !allPass(invs) {
		t.Errorf("a parent equal to the top fails: %+v", invs)
	}
}

// treeParent is the non-leaf above node in the default spec, or "".
func treeParent(node string) string {
	if i := strings.LastIndex(node, "/"); i >= 0 {
		return node[:i]
	}
	return ""
}

// TestVerifyNonLeafChanged changes one figure of a non-leaf and expects
// exactly the invariants that compare it to fail, with a detail naming the
// figure.
func TestVerifyNonLeafChanged(t *testing.T) {
	b20us := reclaim.BucketOf(20_000)
	lo20, hi20 := reclaim.BucketBounds(b20us)
	mutations := []struct {
		name   string
		change func(*reclaim.Stat)
		detail string // the detail of SumOfChildren at the node starts with it
		breaks bool   // the node itself becomes inconsistent
		forced bool   // ForcedOverChildren, not SumOfChildren, fails
	}{
		{name: "vmscan_count +1", change: func(s *reclaim.Stat) { s.Count++ }, detail: "vmscan_count ", breaks: true},
		{name: "vmscan_count -1", change: func(s *reclaim.Stat) { s.Count-- }, detail: "vmscan_count ", breaks: true},
		{name: "total_vmscan_delay +1", change: func(s *reclaim.Stat) { s.DelayNS++ }, detail: "total_vmscan_delay ", breaks: true},
		{name: "nr_reclaimed -1", change: func(s *reclaim.Stat) { s.Reclaimed-- }, detail: "nr_reclaimed ", breaks: true},
		{
			// Bucket-wise: the same count in other buckets is not the sum.
			name: "a reclaim moved to the next bucket",
			change: func(s *reclaim.Stat) {
				s.LimitHist[b20us]--
				s.LimitHist[b20us+1]++
			},
			detail: fmt.Sprintf("limit bucket [%d,%d) ns ", lo20, hi20),
		},
		{
			name: "a whole reclaim more, consistently",
			change: func(s *reclaim.Stat) {
				one := reclaims(1)
				s.Add(&one)
			},
			detail: "total_vmscan_delay ",
		},
		{
			name:   "delay moved from limit to proactive",
			change: func(s *reclaim.Stat) { s.Causes[reclaim.Max].DelayNS--; s.Causes[reclaim.Proactive].DelayNS++ },
			detail: "max.delay_ns ",
		},
		{name: "direct count +1", change: func(s *reclaim.Stat) { s.Causes[reclaim.Direct].Count++ }, detail: "direct.count "},
		{name: "a throttle sleep more, consistently", change: func(s *reclaim.Stat) { s.ObserveThrottle(300e6) }, detail: "throttle.delay_ns "},
		{name: "forced below its children's", change: func(s *reclaim.Stat) { s.Forced.Reclaimed-- }, detail: "forced.reclaimed_pages ", forced: true},
		// Its own limit forced reclaim too: allowed at the node, but its
		// parent's forced is then less than its children's.
		{name: "forced above its children's (own limit)", change: func(s *reclaim.Stat) { s.Forced.Count++ }, forced: true},
	}
	for _, node := range []string{"test/child1", "test/child2", "test"} {
		for _, m := range mutations {
			t.Run(node+"/"+m.name, func(t *testing.T) {
				stats, _ := consistentTree()
				s := stats[node]
				s.Own()
				m.change(&s)
				stats[node] = s
				invs := Verify(spec.Default(), stats, roomyParent(stats["test"]), reclaim.Max)
				var want []key
				name := SumOfChildren
				if m.forced {
					name = ForcedOverChildren
				}
				if m.detail != "" {
					want = append(want, key{node, name})
				}
				if up := treeParent(node); up != "" && !(m.forced && m.detail != "") {
					want = append(want, key{up, name})
				}
				if m.breaks {
					want = append(want, key{node, Consistent})
				}
				if !sameKeys(failing(invs), sorted(want...)) {
					t.Fatalf("failing %v, want %v: %+v", failing(invs), sorted(want...), invs)
				}
				if m.detail == "" {
					return
				}
				inv := byKey(invs)[key{node, name}]
				if !strings.HasPrefix(inv.Detail, m.detail) {
					t.Errorf("detail %q does not start with %q", inv.Detail, m.detail)
				}
			})
		}
	}
}

// roomyParent is a parent with room above top in every figure.
func roomyParent(top reclaim.Stat) reclaim.Stat {
	room := reclaim.Stat{DelayNS: 1e12, Count: 1e6, Reclaimed: 1e6, MaxNS: 1<<64 - 1,
		Forced: reclaim.Counters{DelayNS: 1e12, Count: 1e6, Reclaimed: 1e6}}
	room.Own()
	for i := range room.LimitHist {
		room.LimitHist[i] = 1e6
		room.ProactiveHist[i] = 1e6
	}
	for c := range room.Causes {
		room.Causes[c] = room.Forced
	}
	top.Add(&room)
	return top
}

// TestVerifyMax: a non-leaf's maximum is its children's largest, no more
// and no less, even within the same bucket.
func TestVerifyMax(t *testing.T) {
	for _, d := range []int{+1, -1} {
		stats, parent := consistentTree()
		s := stats["test/child2"] // the largest, 4 ms, is below it
		s.MaxNS += uint64(d)
		stats["test/child2"] = s
		invs := Verify(spec.Default(), stats, parent, reclaim.Max)
		want := sorted(key{"test/child2", SumOfChildren}, key{"test", SumOfChildren})
		if !sameKeys(failing(invs), want) {
			t.Errorf("max %+d: failing %v, want %v", d, failing(invs), want)
		}
		if inv := byKey(invs)[want[1]]; inv.Detail != fmt.Sprintf("max_delay_ns %d vs 4000000", 4_000_000+d) {
			t.Errorf("max %+d: detail %q", d, inv.Detail)
		}
	}
}

func TestVerifyDetailNamesValues(t *testing.T) {
	stats, parent := consistentTree()
	s := stats["test/child1"]
	s.Count++
	stats["test/child1"] = s
	k := byKey(Verify(spec.Default(), stats, parent, reclaim.Max))
	if inv, want := k[key{"test/child1", SumOfChildren}], "vmscan_count 4 vs 3"; inv.Detail != want {
		t.Errorf("detail %q, want %q (got vs sum of children)", inv.Detail, want)
	}
	if inv, want := k[key{"test/child1", Consistent}], "max + high + proactive.count 3 vs vmscan_count 4"; inv.Detail != want {
		t.Errorf("detail %q, want %q", inv.Detail, want)
	}
}

// TestVerifyLeafInconsistent breaks one figure of a leaf and passes it on
// to the sums above, so that only Consistent can fail: at the leaf and at
// each of its ancestors, which inherit the inconsistency.
func TestVerifyLeafInconsistent(t *testing.T) {
	const leaf = "test/child2/child2_1" // 300 µs, 2.0 µs, 2.1 µs
	tests := []struct {
		name   string
		change func(*reclaim.Stat)
		detail string
	}{
		{"a bucket lost", func(s *reclaim.Stat) { s.ProactiveHist[reclaim.BucketOf(2_000)]-- }, "proactive buckets add up to 0, proactive.count 1"},
		{"a bucket too many", func(s *reclaim.Stat) { s.LimitHist[0]++ }, "limit buckets add up to 3, limit.count 2"},
		{"a reclaim moved from limit to proactive", func(s *reclaim.Stat) {
			s.LimitHist[reclaim.BucketOf(300_000)]--
			s.ProactiveHist[reclaim.BucketOf(300_000)]++
		}, "limit buckets add up to 1, limit.count 2; proactive buckets add up to 2, proactive.count 1"},
		{"direct in the seed's delay", func(s *reclaim.Stat) { s.DelayNS += 7 },
			"max + high + proactive.delay_ns 304100 vs total_vmscan_delay 304107"},
		{"a cause's pages lost", func(s *reclaim.Stat) { s.Causes[reclaim.Max].Reclaimed-- },
			"max + high + proactive.reclaimed_pages 29 vs nr_reclaimed 30"},
		{"max below the top bucket", func(s *reclaim.Stat) { s.MaxNS = 2_100 }, "max_delay_ns 2100 outside the highest non-empty bucket"},
		{"max above the top bucket", func(s *reclaim.Stat) { s.MaxNS = 1e9 }, "max_delay_ns 1000000000 outside the highest non-empty bucket"},
		{"a throttle sleep without its bucket", func(s *reclaim.Stat) { s.Throttle.Count++ }, "throttle buckets add up to 0, throttle.count 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaves := leafStats()
			s := leaves[leaf]
			s.Own()
			tt.change(&s)
			leaves[leaf] = s
			stats, parent := tree(leaves)
			invs := Verify(spec.Default(), stats, parent, reclaim.Max)
			want := sorted(key{leaf, Consistent}, key{"test/child2", Consistent}, key{"test", Consistent})
			if strings.HasPrefix(tt.name, "max below") {
				// Above it, the largest is a sibling's, whose bucket it is.
				want = []key{{leaf, Consistent}}
			}
			if !sameKeys(failing(invs), want) {
				t.Fatalf("failing %v, want %v: %+v", failing(invs), want, invs)
			}
			if d := byKey(invs)[key{leaf, Consistent}].Detail; !strings.HasPrefix(d, tt.detail) {
				t.Errorf("detail %q, want it to start with %q", d, tt.detail)
			}
		})
	}
	// A maximum without any reclaim.
	inv := consistent("x", &reclaim.Stat{MaxNS: 5})
	if inv.Pass || inv.Detail != "max_delay_ns 5 with no reclaim in any bucket" {
		t.Errorf("max without reclaim: %+v", inv)
	}
	if inv := consistent("x", &reclaim.Stat{}); !inv.Pass {
		t.Errorf("nothing at all: %+v", inv)
	}
}

func TestVerifyLeafWithoutReclaim(t *testing.T) {
	tests := []struct {
		name   string
		stat   reclaim.Stat
		detail string
	}{
		{"zero delay", recorded(reclaim.Max, true, 0, 0), "delay 0 ns, count 2, max.count 2, forced.count 2"},
		{"nothing at all", reclaim.Stat{}, "delay 0 ns, count 0, max.count 0, forced.count 0"},
		{"not its stress's cause", recorded(reclaim.Proactive, true, 10), "delay 10 ns, count 1, max.count 0, forced.count 1"},
		{"not forced", recorded(reclaim.Max, false, 10), "delay 10 ns, count 1, max.count 1, forced.count 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaves := leafStats()
			leaves["test/child2/child2_1"] = tt.stat
			stats, parent := tree(leaves)
			invs := Verify(spec.Default(), stats, parent, reclaim.Max)
			want := []key{{"test/child2/child2_1", LeafReclaimed}}
			if !sameKeys(failing(invs), want) {
				t.Fatalf("failing %v, want %v", failing(invs), want)
			}
			if d := byKey(invs)[want[0]].Detail; d != tt.detail {
				t.Errorf("detail %q, want %q", d, tt.detail)
			}
		})
	}
}

// TestVerifyStressCause: on v2 the stress writes memory.reclaim, so the
// leaves must show proactive reclaim; leafStats' child1_1 has only limit.
func TestVerifyStressCause(t *testing.T) {
	if StressCause(1) != reclaim.Max || StressCause(2) != reclaim.Proactive {
		t.Fatalf("StressCause(1), (2) = %v, %v", StressCause(1), StressCause(2))
	}
	stats, parent := consistentTree()
	invs := Verify(spec.Default(), stats, parent, reclaim.Proactive)
	want := []key{{"test/child1/child1_1", LeafReclaimed}}
	if !sameKeys(failing(invs), want) {
		t.Fatalf("failing %v, want %v", failing(invs), want)
	}
	if d := byKey(invs)[want[0]].Detail; !strings.Contains(d, "proactive.count 0") {
		t.Errorf("detail %q does not name proactive", d)
	}
}

func TestVerifyTopAboveParent(t *testing.T) {
	stats, _ := consistentTree()
	top := stats["test"]
	b := reclaim.BucketOf(300_000)
	lo, hi := reclaim.BucketBounds(b)
	for _, tt := range []struct {
		field  string
		change func(*reclaim.Stat)
	}{
		{"total_vmscan_delay", func(s *reclaim.Stat) { s.DelayNS-- }},
		{"vmscan_count", func(s *reclaim.Stat) { s.Count-- }},
		{"nr_reclaimed", func(s *reclaim.Stat) { s.Reclaimed-- }},
		{"max_delay_ns", func(s *reclaim.Stat) { s.MaxNS-- }},
		{fmt.Sprintf("limit bucket [%d,%d) ns", lo, hi), func(s *reclaim.Stat) { s.LimitHist[b]-- }},
		{"proactive.count", func(s *reclaim.Stat) { s.Causes[reclaim.Proactive].Count-- }},
		{"direct.delay_ns", func(s *reclaim.Stat) { s.Causes[reclaim.Direct].DelayNS-- }},
		{"forced.count", func(s *reclaim.Stat) { s.Forced.Count-- }},
	} {
		parent := top
		parent.Own()
		tt.change(&parent)
		invs := Verify(spec.Default(), stats, parent, reclaim.Max)
		want := []key{{"test", AtMostParent}}
		if !sameKeys(failing(invs), want) {
			t.Errorf("parent below the top in %s: failing %v, want %v", tt.field, failing(invs), want)
			continue
		}
		if d := byKey(invs)[want[0]].Detail; !strings.HasPrefix(d, tt.field+" ") || strings.Contains(d, ";") {
			t.Errorf("parent below the top in %s: detail %q, want it alone", tt.field, d)
		}
	}
	// A parent with nothing at all (e.g. its stat file was never flushed):
	// the detail lists a few figures, not all 100-odd.
	inv := byKey(Verify(spec.Default(), stats, reclaim.Stat{}, reclaim.Max))[key{"test", AtMostParent}]
	if inv.Pass || strings.Count(inv.Detail, " vs ") != maxDetails || !strings.Contains(inv.Detail, " more") {
		t.Errorf("empty parent: %+v, want a failure naming %d figures and how many more", inv, maxDetails)
	}
}

// TestVerifyCustomSpec checks that Verify follows the spec, not the
// default tree's shape: a one-node spec has one leaf and the top.
func TestVerifyCustomSpec(t *testing.T) {
	s, err := spec.Parse([]byte("name: solo\n"), "solo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st := recorded(reclaim.Max, true, 10)
	invs := Verify(s, map[string]reclaim.Stat{"solo": st}, st, reclaim.Max)
	if len(invs) != 3 || !allPass(invs) || invs[0].Name != LeafReclaimed || invs[1].Name != Consistent || invs[2].Name != AtMostParent {
		t.Errorf("Verify(solo, reclaim.Max) = %+v", invs)
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
