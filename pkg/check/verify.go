package check

import (
	"fmt"
	"strings"

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
	// LeafReclaimed: the stress's own trigger reclaims in the leaf, with
	// the leaf as target. Only "> 0": a leaf may also stall for an
	// ancestor's limit, which neither is its stress's cause nor forced by it.
	LeafReclaimed = "stressed leaf reclaimed, for its stress's cause, and forced it"
	// SumOfChildren holds in every counter, every bucket and every cause:
	// only leaves have tasks, so a non-leaf's own share is 0. Its maximum
	// is its children's largest.
	SumOfChildren = "equals the sum of its children"
	// ForcedOverChildren: reclaim forced by a non-leaf's own limit is its
	// own share, which tasks below it may stall in; so at least the sum.
	ForcedOverChildren = "forced at least its children's"
	// Consistent ties one cgroup's figures together: each cause's buckets
	// add up to its count, max + high + proactive make the seed's totals, and
	// the maximum lies in the highest non-empty bucket.
	Consistent   = "buckets, max and causes agree with its totals"
	AtMostParent = "at most its parent"
)

// maxDetails bounds how many mismatches an invariant's detail lists.
const maxDetails = 4

// StressCause is the cause of the reclaim that stress triggers: on cgroup
// v1 it lowers memory.limit_in_bytes (max reclaim), on v2 it writes
// memory.reclaim (proactive).
func StressCause(cgroupVersion int) reclaim.Cause {
	if cgroupVersion == 1 {
		return reclaim.Max
	}
	return reclaim.Proactive
}

// Verify checks the stats of a tree: stats maps each spec path ("test",
// "test/child1") to its stat, parent is the stat of the tree's parent, and
// cause is the stress's (StressCause).
func Verify(s *spec.Spec, stats map[string]reclaim.Stat, parent reclaim.Stat, cause reclaim.Cause) []Invariant {
	var out []Invariant
	_ = s.Walk(func(rel string, n *spec.Node) error {
		st := stats[rel]
		if n.IsLeaf() {
			out = append(out, leafInvariant(rel, &st, cause), consistent(rel, &st))
			return nil
		}
		var sum reclaim.Stat
		for _, ch := range n.Children {
			c := stats[rel+"/"+ch.Name]
			sum.Add(&c)
		}
		out = append(out,
			compare(rel, SumOfChildren, stall(&st), stall(&sum), equal),
			compare(rel, ForcedOverChildren, forced(&st), forced(&sum), atLeast),
			consistent(rel, &st))
		return nil
	})
	top := stats[s.Root.Name]
	return append(out, compare(s.Root.Name, AtMostParent, all(&top), all(&parent), atMost))
}

func leafInvariant(rel string, st *reclaim.Stat, cause reclaim.Cause) Invariant {
	c := st.Causes[cause]
	inv := Invariant{Cgroup: rel, Name: LeafReclaimed,
		Pass: st.DelayNS > 0 && st.Count > 0 && c.Count > 0 && st.Forced.Count > 0}
	if !inv.Pass {
		inv.Detail = fmt.Sprintf("delay %d ns, count %d, %s.count %d, forced.count %d", st.DelayNS, st.Count, cause, c.Count, st.Forced.Count)
	}
	return inv
}

// field is one named number of a stat.
type field struct {
	name string
	v    uint64
}

// stall lists what the tasks of a subtree stalled in: the seed's
// counters, the maximum, every bucket and every cause, and the throttle
// after memory.high with its buckets.
func stall(s *reclaim.Stat) []field {
	f := []field{
		{"total_vmscan_delay", s.DelayNS}, {"vmscan_count", s.Count}, {"nr_reclaimed", s.Reclaimed},
		{"max_delay_ns", s.MaxNS}, {"oom_kills", s.OOMKills},
		{"throttle.delay_ns", s.Throttle.DelayNS}, {"throttle.count", s.Throttle.Count},
	}
	for c := reclaim.Cause(0); c < reclaim.NrCauses; c++ {
		f = append(f, counters(c.String(), s.Causes[c])...)
	}
	for _, d := range s.Dists() {
		for i, n := range d.Hist {
			lo, hi := reclaim.BucketBounds(i)
			f = append(f, field{fmt.Sprintf("%s bucket [%d,%d) ns", d.Name, lo, hi), n})
		}
	}
	var th reclaim.Hist
	if s.Throttle.Hist != nil {
		th = *s.Throttle.Hist
	}
	for i, n := range th {
		lo, hi := reclaim.BucketBounds(i)
		f = append(f, field{fmt.Sprintf("throttle bucket [%d,%d) ns", lo, hi), n})
	}
	return f
}

func forced(s *reclaim.Stat) []field { return counters("forced", s.Forced) }

func all(s *reclaim.Stat) []field { return append(stall(s), forced(s)...) }

func counters(prefix string, c reclaim.Counters) []field {
	return []field{{prefix + ".delay_ns", c.DelayNS}, {prefix + ".count", c.Count}, {prefix + ".reclaimed_pages", c.Reclaimed}}
}

func equal(a, b uint64) bool   { return a == b }
func atMost(a, b uint64) bool  { return a <= b }
func atLeast(a, b uint64) bool { return a >= b }

// compare checks got against want field by field. The maximum is not a
// sum: a parent's equals its children's largest, which Stat.Add keeps, so
// the same comparison holds for it.
func compare(rel, name string, got, want []field, ok func(a, b uint64) bool) Invariant {
	var bad []string
	for i := range got {
		if !ok(got[i].v, want[i].v) {
			bad = append(bad, fmt.Sprintf("%s %d vs %d", got[i].name, got[i].v, want[i].v))
		}
	}
	return Invariant{Cgroup: rel, Name: name, Pass: len(bad) == 0, Detail: details(bad)}
}

func details(bad []string) string {
	if len(bad) > maxDetails {
		bad = append(bad[:maxDetails], fmt.Sprintf("and %d more", len(bad)-maxDetails))
	}
	return strings.Join(bad, "; ")
}

// consistent checks one cgroup's figures against each other.
func consistent(rel string, s *reclaim.Stat) Invariant {
	var bad []string
	for _, d := range s.Dists() {
		if d.Hist.Total() != d.Counters.Count {
			bad = append(bad, fmt.Sprintf("%s buckets add up to %d, %s.count %d", d.Name, d.Hist.Total(), d.Name, d.Counters.Count))
		}
	}
	var throttled uint64
	if s.Throttle.Hist != nil {
		throttled = s.Throttle.Hist.Total()
	}
	if throttled != s.Throttle.Count {
		bad = append(bad, fmt.Sprintf("throttle buckets add up to %d, throttle.count %d", throttled, s.Throttle.Count))
	}
	memcg := s.Limit().Add(s.Causes[reclaim.Proactive])
	seed := stall(s)[:3] // the seed's three
	for i, f := range counters("max + high + proactive", memcg) {
		if legacy := seed[i]; f.v != legacy.v {
			bad = append(bad, fmt.Sprintf("%s %d vs %s %d", f.name, f.v, legacy.name, legacy.v))
		}
	}
	if msg := maxInTopBucket(s); msg != "" {
		bad = append(bad, msg)
	}
	return Invariant{Cgroup: rel, Name: Consistent, Pass: len(bad) == 0, Detail: details(bad)}
}

// maxInTopBucket says what is wrong with the maximum, if anything: it
// must lie in the highest non-empty bucket, and be 0 when all are empty.
func maxInTopBucket(s *reclaim.Stat) string {
	top := -1
	h := s.Hist()
	for i, c := range h {
		if c > 0 {
			top = i
		}
	}
	if top < 0 {
		if s.MaxNS != 0 {
			return fmt.Sprintf("max_delay_ns %d with no reclaim in any bucket", s.MaxNS)
		}
		return ""
	}
	if b := reclaim.BucketOf(s.MaxNS); b != top {
		lo, hi := reclaim.BucketBounds(top)
		return fmt.Sprintf("max_delay_ns %d outside the highest non-empty bucket [%d,%d) ns", s.MaxNS, lo, hi)
	}
	return ""
}
