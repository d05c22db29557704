package reclaim

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/identity"
)

// Stat is one cgroup's hierarchical total: every CPU, every descendant.
//
// DelayNS, Count and Reclaimed keep the seed's meaning: memory-cgroup
// reclaim (Max + High + Proactive). Global direct reclaim is counted in
// Causes[Direct] only.
type Stat struct {
	ID        uint64
	Path      string
	DelayNS   uint64 // total time stalled in memory-cgroup reclaim
	Count     uint64 // memory-cgroup reclaims
	Reclaimed uint64 // pages they reclaimed

	MaxNS  uint64             // longest memory-cgroup reclaim of the subtree
	Causes [NrCauses]Counters // every reclaim the subtree's tasks stalled in, by cause
	// LimitHist (Max and High together) and ProactiveHist are
	// memory-cgroup reclaims by latency; Hist() is their sum. Max and
	// High share one, and direct reclaim has none: the BPF side keeps two
	// per cgroup so that a cgroup's entry fits one 4 KiB allocation.
	// Each is nil while empty (most cgroups of a big tree never reclaim:
	// inline, the two made a Stat 2 KB, 85% zeros, and read --all of
	// 10,000 cgroups faulted in 20 MB of them), and shared between
	// copies of a Stat: never changed in place.
	LimitHist, ProactiveHist *Hist
	// Forced is the memory-cgroup reclaim whose target (the cgroup whose
	// limit was enforced) lies in the subtree, whichever task stalled in
	// it: "/pods/a stalls because /pods hits memory.max" is /pods' Forced.
	Forced Counters
	// OOMKills are the subtree's tasks that the OOM killer chose, counted
	// from BPF (oom:mark_victim), so on cgroup v1 too.
	OOMKills uint64
	// Throttle is the penalty the kernel imposed after memory.high on the
	// subtree's tasks, where it can be measured (Throttle.Measured).
	Throttle Throttle

	// Events and Pressure are the kernel's own figures, read beside the
	// reclaim in the tree walk (read --all, serve, watch); not sums of
	// cgrstat's, and not read through a stat file.
	Events   Events
	Pressure Pressure
}

// Cause is why a task reclaimed.
type Cause int

const (
	// Max is memory-cgroup reclaim at charge time against memory.max
	// (v1: memory.limit_in_bytes), writes to it included: the charging
	// task waits for it.
	Max Cause = iota
	// High is memory-cgroup reclaim for memory.high, done on the way back
	// to user space (or by a kworker) after a charge went over it, writes
	// to memory.high included.
	High
	// Proactive is reclaim requested through memory.reclaim.
	Proactive
	// Direct is global direct reclaim (the machine, not a cgroup, ran
	// short), charged to the stalled task's memory cgroup.
	Direct
	NrCauses
)

var causeNames = [NrCauses]string{"max", "high", "proactive", "direct"}

// AllCauses are every cause, in the order of Stat.Causes.
var AllCauses = [NrCauses]Cause{Max, High, Proactive, Direct}

func (c Cause) String() string {
	if c < 0 || c >= NrCauses {
		return fmt.Sprintf("cause(%d)", int(c))
	}
	return causeNames[c]
}

// Throttle is the penalty sleep a cgroup's tasks get for staying above
// memory.high after reclaim: the calls of the kernel's over-high handler
// (mem_cgroup_handle_over_high) that spent 1 ms or more outside reclaim,
// their time there and their distribution. Measured only where the
// kernel lets fentry/fexit attach; Measured false means unavailable, not
// zero.
type Throttle struct {
	Measured bool
	DelayNS  uint64 // time of those calls outside reclaim
	Count    uint64 // those calls (sleeps): Hist's total
	// Hist is the sleeps by length, in the reclaim latency's buckets; nil
	// without any (most cgroups: only those with memory.high throttle).
	// Shared between copies of a Stat: never changed in place.
	Hist *Hist
}

// ThrottleFrom is the Throttle of a cgroup whose hierarchical throttle
// counters, as the BPF side keeps them, are c (nil: none). Its count is
// its histogram's sum there, so it is here.
func ThrottleFrom(c *bpf.CgrstatThrottleCounters, measured bool) Throttle {
	t := Throttle{Measured: measured}
	if c == nil {
		return t
	}
	t.DelayNS, t.Hist = c.DelayNs, HistOf(&c.Hist)
	t.Count = orEmpty(t.Hist).Total()
	return t
}

// Equal says whether t and o hold the same figures (Hist by value).
func (t Throttle) Equal(o Throttle) bool {
	return t.Measured == o.Measured && t.DelayNS == o.DelayNS && t.Count == o.Count && *orEmpty(t.Hist) == *orEmpty(o.Hist)
}

// Add returns t + o. One load measures every cgroup or none: a sum of
// measured cgroups is measured.
func (t Throttle) Add(o Throttle) Throttle {
	t.Measured = t.Measured || o.Measured
	t.DelayNS += o.DelayNS
	t.Count += o.Count
	t.Hist = sumHist(t.Hist, o.Hist)
	return t
}

// AddThrottle adds b to a bucket by bucket, as the BPF flush does.
func AddThrottle(a, b *bpf.CgrstatThrottleCounters) {
	a.DelayNs += b.DelayNs
	for i := range a.Hist {
		a.Hist[i] += b.Hist[i]
	}
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

// Memcg returns the seed's counters, memory-cgroup reclaim, as Counters.
func (s *Stat) Memcg() Counters {
	return Counters{s.DelayNS, s.Count, s.Reclaimed}
}

// Limit is charge-time reclaim whichever limit: Max + High, what cgrstat
// called "limit" before it told them apart.
func (s *Stat) Limit() Counters {
	return s.Causes[Max].Add(s.Causes[High])
}

// Hist is the distribution of memory-cgroup reclaim latency: max, high
// and proactive together. Its total is Count.
func (s *Stat) Hist() Hist {
	h := *orEmpty(s.LimitHist)
	h.Add(orEmpty(s.ProactiveHist))
	return h
}

// noHist is what an absent histogram reads as: never written.
var noHist Hist

// orEmpty is h, or an empty histogram for nil, to read.
func orEmpty(h *Hist) *Hist {
	if h == nil {
		return &noHist
	}
	return h
}

// sumHist is a new histogram a + b, or nil when both are empty: neither
// is changed, since Stats share them.
func sumHist(a, b *Hist) *Hist {
	switch {
	case b.empty():
		return a
	case a.empty():
		return b
	}
	h := *a
	h.Add(b)
	return &h
}

// HistOf is a copy of h on the heap, or nil when h is empty: a Stat's
// histogram from one the BPF side filled.
func HistOf(h *[NrBuckets]uint64) *Hist {
	if *h == ([NrBuckets]uint64{}) {
		return nil
	}
	c := Hist(*h)
	return &c
}

// Own gives s histograms of its own, empty ones included, which it may
// then change in place (tests that build or break a Stat bucket by bucket).
func (s *Stat) Own() {
	for _, h := range []**Hist{&s.LimitHist, &s.ProactiveHist} {
		c := *orEmpty(*h)
		*h = &c
	}
}

// histOf is the distribution a cause's latencies are counted in: Max and
// High share LimitHist; Direct has none (nil).
func (s *Stat) histOf(c Cause) **Hist {
	switch c {
	case Max, High:
		return &s.LimitHist
	case Proactive:
		return &s.ProactiveHist
	}
	return nil
}

// Dist is a latency distribution the BPF side keeps, with the counters
// of the reclaims it counts: its total is Counters.Count.
type Dist struct {
	Name     string // "limit" (max and high) or "proactive"
	Counters Counters
	Hist     *Hist
}

// Dists are s's latency distributions: limit (max and high) and proactive.
func (s *Stat) Dists() [2]Dist {
	return [2]Dist{{"limit", s.Limit(), orEmpty(s.LimitHist)}, {"proactive", s.Causes[Proactive], orEmpty(s.ProactiveHist)}}
}

// Observe adds one reclaim of cause c that took ns and reclaimed pages, as
// the BPF side does; for memory-cgroup reclaim, forced says that its
// target is this cgroup too. Tests build their stats with it.
func (s *Stat) Observe(c Cause, ns, pages uint64, forced bool) {
	one := Counters{ns, 1, pages}
	s.Causes[c] = s.Causes[c].Add(one)
	p := s.histOf(c)
	if p == nil {
		return
	}
	h := *orEmpty(*p) // a new one: *p may be another Stat's
	h[BucketOf(ns)]++
	*p = &h
	s.DelayNS += ns
	s.Count++
	s.Reclaimed += pages
	s.MaxNS = max(s.MaxNS, ns)
	if forced {
		s.Forced = s.Forced.Add(one)
	}
}

// ObserveThrottle adds one throttle (a sleep that took ns outside
// reclaim) to s, as the BPF side does. Tests build their stats with it.
func (s *Stat) ObserveThrottle(ns uint64) {
	var h Hist
	h[BucketOf(ns)]++
	s.Throttle = s.Throttle.Add(Throttle{Measured: true, DelayNS: ns, Count: 1, Hist: &h})
}

// Add adds o's counters and buckets to s and keeps the larger maximum, as
// the flush does from a child to its parent. ID and Path stay s's.
func (s *Stat) Add(o *Stat) {
	s.DelayNS += o.DelayNS
	s.Count += o.Count
	s.Reclaimed += o.Reclaimed
	s.MaxNS = max(s.MaxNS, o.MaxNS)
	for c := range s.Causes {
		s.Causes[c] = s.Causes[c].Add(o.Causes[c])
	}
	s.LimitHist = sumHist(s.LimitHist, o.LimitHist)
	s.ProactiveHist = sumHist(s.ProactiveHist, o.ProactiveHist)
	s.Forced = s.Forced.Add(o.Forced)
	s.OOMKills += o.OOMKills
	s.Throttle = s.Throttle.Add(o.Throttle)
}

// Collected is s without the kernel's own figures (Events, Pressure):
// what cgrstat's collectors recorded, which a stat file prints and a
// parent sums from its children. The kernel's figures are read only in
// the tree walk and are the kernel's own hierarchical counts.
func (s Stat) Collected() Stat {
	s.Events, s.Pressure = Events{}, Pressure{}
	return s
}

// Equal says whether s and o hold the same figures: == but for the
// histograms (the throttle's too), compared by value (a nil one is empty).
func (s Stat) Equal(o Stat) bool {
	if !s.Throttle.Equal(o.Throttle) || *orEmpty(s.LimitHist) != *orEmpty(o.LimitHist) || *orEmpty(s.ProactiveHist) != *orEmpty(o.ProactiveHist) {
		return false
	}
	s.Throttle, o.Throttle = Throttle{}, Throttle{}
	s.LimitHist, s.ProactiveHist, o.LimitHist, o.ProactiveHist = nil, nil, nil, nil
	return s == o
}

// Quantile estimates the q-quantile of memory-cgroup reclaim latency in
// ns (see Hist.Quantile), capped by the exact maximum: the true quantile
// is at most MaxNS, so the cap only ever brings the estimate closer.
func (s *Stat) Quantile(q float64) uint64 {
	h := s.Hist()
	return min(h.Quantile(q), s.MaxNS)
}

// Levels are the quantiles that read's table and JSON give.
var Levels = [3]float64{0.50, 0.90, 0.99}

// Quantiles are p50, p90 and p99 (Levels) as Quantile gives them, in one
// pass: read --all computes them for every cgroup.
func (s *Stat) Quantiles() [len(Levels)]uint64 {
	h := s.Hist()
	return s.quantiles(&h)
}

// quantiles are Quantiles of h, s's Hist.
func (s *Stat) quantiles(h *Hist) [len(Levels)]uint64 {
	var out [len(Levels)]uint64
	h.Quantiles(Levels[:], out[:])
	for i := range out {
		out[i] = min(out[i], s.MaxNS)
	}
	return out
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

// statJSON is Stat's JSON form as UnmarshalJSON reads it (README.md
// documents it; AppendJSON writes it). Its first five fields are the
// seed's, unchanged.
type statJSON struct {
	ID        uint64          `json:"id"`
	Path      string          `json:"path"`
	DelayNS   uint64          `json:"total_vmscan_delay_ns"`
	Count     uint64          `json:"vmscan_count"`
	Reclaimed uint64          `json:"nr_reclaimed"`
	MaxNS     uint64          `json:"max_delay_ns"`
	P50NS     uint64          `json:"p50_delay_ns"`
	P90NS     uint64          `json:"p90_delay_ns"`
	P99NS     uint64          `json:"p99_delay_ns"`
	Buckets   []Bucket        `json:"buckets"`
	Causes    causeJSON       `json:"causes"`
	Forced    Counters        `json:"forced"`
	OOMKills  uint64          `json:"oom_kills"`
	Throttle  json.RawMessage `json:"throttle"`
	Events    *eventsJSON     `json:"events"`
	Pressure  *pressureJSON   `json:"pressure"`
}

type causeJSON struct {
	Limit     histCounters `json:"limit"` // Max + High: only its buckets are read back
	Max       Counters     `json:"max"`
	High      Counters     `json:"high"`
	Proactive histCounters `json:"proactive"`
	Direct    Counters     `json:"direct"`
}

// histCounters are a cause's counters with its buckets.
type histCounters struct {
	Counters
	Buckets []Bucket `json:"buckets"`
}

// MarshalJSON writes the seed's fields, then the maximum, the quantiles,
// the non-empty buckets with their bounds, the causes (limit, which is max
// plus high, with the buckets max and high share, max, high, and proactive
// with its buckets) and the forced reclaim. Only non-empty buckets: all
// 106 for 10,000 cgroups would be megabytes of zeros, and each bucket
// carries its bounds anyway.
func (s Stat) MarshalJSON() ([]byte, error) {
	return s.AppendJSON(nil), nil
}

// AppendJSON appends what MarshalJSON writes to b. It writes the numbers
// itself: going through encoding/json, which re-validates what a
// MarshalJSON returns, took 70 µs per cgroup with 60 buckets.
func (s *Stat) AppendJSON(b []byte) []byte {
	var ids identity.Parser
	return s.AppendJSONIn(b, &ids)
}

// AppendJSONIn is AppendJSON with the path's identity read by ids: for
// the rows of a tree, parents first, each parsed below its parent's.
func (s *Stat) AppendJSONIn(b []byte, ids *identity.Parser) []byte {
	// Most cgroups of a big tree never reclaimed: their histograms are
	// neither summed nor searched.
	var h Hist
	hp := &noHist // h, unless empty
	var q [len(Levels)]uint64
	if !(s.LimitHist.empty() && s.ProactiveHist.empty()) {
		h = s.Hist()
		q = s.quantiles(&h)
		hp = &h
	}
	b = strconv.AppendUint(append(b, `{"id":`...), s.ID, 10)
	b = appendString(append(b, `,"path":`...), s.Path)
	if id, ok := ids.Parse(s.Path); ok {
		// What the path tells: a pod, a container, a unit (README).
		ident, _ := json.Marshal(id) // strings only: always encodes
		b = append(append(b, `,"identity":`...), ident...)
	}
	for _, f := range []struct {
		key string
		v   uint64
	}{
		{"total_vmscan_delay_ns", s.DelayNS}, {"vmscan_count", s.Count}, {"nr_reclaimed", s.Reclaimed},
		{"max_delay_ns", s.MaxNS}, {"p50_delay_ns", q[0]}, {"p90_delay_ns", q[1]}, {"p99_delay_ns", q[2]},
	} {
		b = appendKey(b, f.key)
		b = strconv.AppendUint(b, f.v, 10)
	}
	b = appendBuckets(appendKey(b, "buckets"), hp)
	b = append(b, `,"causes":{"limit":`...)
	b = appendCounters(b, s.Limit(), orEmpty(s.LimitHist))
	b = append(b, `,"max":`...)
	b = appendCounters(b, s.Causes[Max], nil)
	b = append(b, `,"high":`...)
	b = appendCounters(b, s.Causes[High], nil)
	b = append(b, `,"proactive":`...)
	b = appendCounters(b, s.Causes[Proactive], orEmpty(s.ProactiveHist))
	b = append(b, `,"direct":`...)
	b = appendCounters(b, s.Causes[Direct], nil)
	b = append(b, `},"forced":`...)
	b = appendCounters(b, s.Forced, nil)
	b = strconv.AppendUint(appendKey(b, "oom_kills"), s.OOMKills, 10)
	b = appendKey(b, "throttle")
	if s.Throttle.Measured {
		b = strconv.AppendUint(append(b, `{"delay_ns":`...), s.Throttle.DelayNS, 10)
		b = strconv.AppendUint(append(b, `,"count":`...), s.Throttle.Count, 10)
		b = append(appendBuckets(appendKey(b, "buckets"), orEmpty(s.Throttle.Hist)), '}')
	} else {
		b = append(b, `"unavailable"`...)
	}
	return append(s.appendKernel(b), '}')
}

// appendString appends s as encoding/json writes it: itself in quotes
// when no byte needs escaping (most cgroup paths), else through json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

func appendKey(b []byte, key string) []byte {
	return append(append(append(b, `,"`...), key...), `":`...)
}

// appendCounters appends {"delay_ns","count","reclaimed_pages"}, with
// "buckets" when h is not nil.
func appendCounters(b []byte, c Counters, h *Hist) []byte {
	b = strconv.AppendUint(append(b, `{"delay_ns":`...), c.DelayNS, 10)
	b = strconv.AppendUint(append(b, `,"count":`...), c.Count, 10)
	b = strconv.AppendUint(append(b, `,"reclaimed_pages":`...), c.Reclaimed, 10)
	if h != nil {
		b = appendBuckets(appendKey(b, "buckets"), h)
	}
	return append(b, '}')
}

// appendBuckets appends h's non-empty buckets as a JSON list of Bucket.
func appendBuckets(b []byte, h *Hist) []byte {
	if h.empty() {
		return append(b, "[]"...)
	}
	b = append(b, '[')
	first := true
	for i, c := range h {
		if c == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		lo, hi := BucketBounds(i)
		b = strconv.AppendUint(append(b, `{"lo_ns":`...), lo, 10)
		b = strconv.AppendUint(append(b, `,"hi_ns":`...), hi, 10)
		b = strconv.AppendUint(append(b, `,"count":`...), c, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// UnmarshalJSON reads what MarshalJSON wrote. The quantiles and the
// top-level buckets, derived from the causes' buckets, are not read back.
func (s *Stat) UnmarshalJSON(b []byte) error {
	var j statJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Stat{ID: j.ID, Path: j.Path, DelayNS: j.DelayNS, Count: j.Count, Reclaimed: j.Reclaimed,
		MaxNS: j.MaxNS, Forced: j.Forced, OOMKills: j.OOMKills}
	if j.Events != nil {
		s.Events = j.Events.events()
	}
	if j.Pressure != nil {
		s.Pressure = Pressure{Read: true, SomeNS: j.Pressure.SomeNS, FullNS: j.Pressure.FullNS}
	}
	// "unavailable" (or absent) where the kernel refused to measure it.
	var t struct {
		DelayNS uint64   `json:"delay_ns"`
		Count   uint64   `json:"count"`
		Buckets []Bucket `json:"buckets"`
	}
	if len(j.Throttle) > 0 && j.Throttle[0] == '{' {
		if err := json.Unmarshal(j.Throttle, &t); err != nil {
			return fmt.Errorf("cgroup %d: throttle: %w", j.ID, err)
		}
		s.Throttle = Throttle{Measured: true, DelayNS: t.DelayNS, Count: t.Count}
		var err error
		if s.Throttle.Hist, err = fill(t.Buckets); err != nil {
			return fmt.Errorf("cgroup %d: throttle: %w", j.ID, err)
		}
	}
	s.Causes = [NrCauses]Counters{j.Causes.Max, j.Causes.High, j.Causes.Proactive.Counters, j.Causes.Direct}
	var err error
	if s.LimitHist, err = fill(j.Causes.Limit.Buckets); err != nil {
		return fmt.Errorf("cgroup %d: limit: %w", j.ID, err)
	}
	if s.ProactiveHist, err = fill(j.Causes.Proactive.Buckets); err != nil {
		return fmt.Errorf("cgroup %d: proactive: %w", j.ID, err)
	}
	return nil
}

// fill is a histogram of buckets, nil for none. A bucket whose bounds are
// not one of ours is an error rather than a count put in the wrong place.
func fill(buckets []Bucket) (*Hist, error) {
	var h Hist
	for _, bk := range buckets {
		i := BucketOf(bk.LoNS)
		if lo, hi := BucketBounds(i); lo != bk.LoNS || hi != bk.HiNS {
			return nil, fmt.Errorf("bucket [%d, %d) ns is not a cgrstat bucket", bk.LoNS, bk.HiNS)
		}
		h[i] += bk.Count
	}
	return HistOf((*[NrBuckets]uint64)(&h)), nil
}
