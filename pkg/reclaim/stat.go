package reclaim

import (
	"encoding/json"
	"fmt"
)

// Stat is one cgroup's hierarchical total: every CPU, every descendant.
//
// DelayNS, Count and Reclaimed keep the seed's meaning: memory-cgroup
// reclaim (Limit + Proactive). Global direct reclaim is counted in
// Causes[Direct] only.
type Stat struct {
	ID        uint64
	Path      string
	DelayNS   uint64 // total time stalled in memory-cgroup reclaim
	Count     uint64 // memory-cgroup reclaims
	Reclaimed uint64 // pages they reclaimed

	MaxNS  uint64             // longest memory-cgroup reclaim of the subtree
	Hist   Hist               // memory-cgroup reclaims by latency; Hist.Total() == Count
	Causes [NrCauses]Counters // every reclaim the subtree's tasks stalled in, by cause
	// Forced is the memory-cgroup reclaim whose target (the cgroup whose
	// limit was enforced) lies in the subtree, whichever task stalled in
	// it: "/pods/a stalls because /pods hits memory.max" is /pods' Forced.
	Forced Counters
}

// Cause is why a task reclaimed.
type Cause int

const (
	// Limit is memory-cgroup reclaim at charge time: memory.max,
	// memory.high, and v1's limit (writes to them included).
	Limit Cause = iota
	// Proactive is reclaim requested through memory.reclaim.
	Proactive
	// Direct is global direct reclaim (the machine, not a cgroup, ran
	// short), charged to the stalled task's memory cgroup.
	Direct
	NrCauses
)

var causeNames = [NrCauses]string{"limit", "proactive", "direct"}

func (c Cause) String() string {
	if c < 0 || c >= NrCauses {
		return fmt.Sprintf("cause(%d)", int(c))
	}
	return causeNames[c]
}

// Counters are the totals of one kind of reclaim.
type Counters struct {
	DelayNS   uint64 `json:"delay_ns"`        // time stalled
	Count     uint64 `json:"count"`           // reclaims
	Reclaimed uint64 `json:"reclaimed_pages"` // pages reclaimed
}

// Add returns c + o.
func (c Counters) Add(o Counters) Counters {
	return Counters{c.DelayNS + o.DelayNS, c.Count + o.Count, c.Reclaimed + o.Reclaimed}
}

// Memcg returns the legacy counters, memory-cgroup reclaim, as Counters.
func (s *Stat) Memcg() Counters {
	return Counters{s.DelayNS, s.Count, s.Reclaimed}
}

// Add adds o's counters and buckets to s and keeps the larger maximum, as
// the flush does from a child to its parent. ID and Path stay s's.
func (s *Stat) Add(o *Stat) {
	s.DelayNS += o.DelayNS
	s.Count += o.Count
	s.Reclaimed += o.Reclaimed
	s.MaxNS = max(s.MaxNS, o.MaxNS)
	s.Hist.Add(&o.Hist)
	for c := range s.Causes {
		s.Causes[c] = s.Causes[c].Add(o.Causes[c])
	}
	s.Forced = s.Forced.Add(o.Forced)
}

// Quantile estimates the q-quantile of memory-cgroup reclaim latency in
// ns (see Hist.Quantile), capped by the exact maximum: the true quantile
// is at most MaxNS, so the cap only ever brings the estimate closer.
func (s *Stat) Quantile(q float64) uint64 {
	return min(s.Hist.Quantile(q), s.MaxNS)
}

// Bucket is one non-empty latency bucket: Count reclaims took from LoNS
// (included) to HiNS (excluded) nanoseconds. The last bucket's HiNS is
// 2^64-1: it has no upper bound.
type Bucket struct {
	LoNS  uint64 `json:"lo_ns"`
	HiNS  uint64 `json:"hi_ns"`
	Count uint64 `json:"count"`
}

// Buckets returns the non-empty buckets of h, by increasing latency.
func (h *Hist) Buckets() []Bucket {
	out := []Bucket{}
	for i, c := range h {
		if c > 0 {
			lo, hi := BucketBounds(i)
			out = append(out, Bucket{lo, hi, c})
		}
	}
	return out
}

// Quantiles that the JSON and the table give.
var Quantiles = []struct {
	Q    float64
	Name string
}{{0.50, "p50"}, {0.90, "p90"}, {0.99, "p99"}}

// statJSON is Stat's JSON form, documented in README.md. Its first five
// fields are the seed's, unchanged.
type statJSON struct {
	ID        uint64    `json:"id"`
	Path      string    `json:"path"`
	DelayNS   uint64    `json:"total_vmscan_delay_ns"`
	Count     uint64    `json:"vmscan_count"`
	Reclaimed uint64    `json:"nr_reclaimed"`
	MaxNS     uint64    `json:"max_delay_ns"`
	P50NS     uint64    `json:"p50_delay_ns"`
	P90NS     uint64    `json:"p90_delay_ns"`
	P99NS     uint64    `json:"p99_delay_ns"`
	Buckets   []Bucket  `json:"buckets"`
	Causes    causeJSON `json:"causes"`
	Forced    Counters  `json:"forced"`
}

type causeJSON struct {
	Limit     Counters `json:"limit"`
	Proactive Counters `json:"proactive"`
	Direct    Counters `json:"direct"`
}

// MarshalJSON writes the seed's fields, then the maximum, the quantiles,
// the non-empty buckets with their bounds, the causes and the forced
// reclaim. Only non-empty buckets: all 106 for 10,000 cgroups would be
// megabytes of zeros, and each bucket carries its bounds anyway.
func (s Stat) MarshalJSON() ([]byte, error) {
	return json.Marshal(statJSON{
		ID: s.ID, Path: s.Path, DelayNS: s.DelayNS, Count: s.Count, Reclaimed: s.Reclaimed,
		MaxNS: s.MaxNS, P50NS: s.Quantile(0.50), P90NS: s.Quantile(0.90), P99NS: s.Quantile(0.99),
		Buckets: s.Hist.Buckets(),
		Causes:  causeJSON{s.Causes[Limit], s.Causes[Proactive], s.Causes[Direct]},
		Forced:  s.Forced,
	})
}

// UnmarshalJSON reads what MarshalJSON wrote; the quantiles, derived from
// the buckets, are ignored. A bucket whose bounds are not one of ours is
// an error rather than a count put in the wrong place.
func (s *Stat) UnmarshalJSON(b []byte) error {
	var j statJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Stat{ID: j.ID, Path: j.Path, DelayNS: j.DelayNS, Count: j.Count, Reclaimed: j.Reclaimed,
		MaxNS: j.MaxNS, Forced: j.Forced}
	s.Causes = [NrCauses]Counters{j.Causes.Limit, j.Causes.Proactive, j.Causes.Direct}
	for _, bk := range j.Buckets {
		i := BucketOf(bk.LoNS)
		if lo, hi := BucketBounds(i); lo != bk.LoNS || hi != bk.HiNS {
			return fmt.Errorf("cgroup %d: bucket [%d, %d) ns is not a cgrstat bucket", j.ID, bk.LoNS, bk.HiNS)
		}
		s.Hist[i] += bk.Count
	}
	return nil
}
