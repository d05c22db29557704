// Package reclaim reads the reclaim statistics of cgroups: one cgroup
// through its iterator (which flushes first), or whole subtrees from one
// consistent copy of the stats map.
package reclaim

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/cgroupiter"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
)

// FromCounters is the Stat of a cgroup whose hierarchical counters, as the
// BPF side keeps them, are c. Memory-cgroup reclaim's counts are its
// histograms' sums there, so they are here.
func FromCounters(id uint64, path string, c *bpf.CgrstatCounters) Stat {
	s := Stat{ID: id, Path: path, MaxNS: c.MaxDelayNs,
		LimitHist: c.LimitHist, ProactiveHist: c.ProactiveHist,
		Forced: Counters{c.Forced.DelayNs, c.Forced.Count, c.Forced.Reclaimed}, OOMKills: c.OomKills,
		Throttle: Throttle{DelayNS: c.Throttle.DelayNs, Count: c.Throttle.Count}}
	// Max's count is the shared histogram's total less high's, as the
	// stat file prints it (bpf/cgrstat.c, struct counters).
	limit := s.LimitHist.Total()
	high := min(c.HighLimitCount, limit)
	s.Causes[Max] = Counters{c.MaxLimitDelayNs, limit - high, c.MaxLimitReclaimed}
	s.Causes[High] = Counters{c.HighLimitDelayNs, high, c.HighLimitReclaimed}
	s.Causes[Proactive] = Counters{c.ProactiveDelayNs, s.ProactiveHist.Total(), c.ProactiveReclaimed}
	s.Causes[Direct] = Counters{c.Direct.DelayNs, c.Direct.Count, c.Direct.Reclaimed}
	m := s.Limit().Add(s.Causes[Proactive])
	s.DelayNS, s.Count, s.Reclaimed = m.DelayNS, m.Count, m.Reclaimed
	return s
}

const lineFormat = "cg_id: %d, total_vmscan_delay: %d, vmscan_count: %d, nr_reclaimed: %d"

// ParseLine parses a stat file's first line, the seed's. Trailing fields
// that a later cgrstat may add are ignored, as the seed's own parsers do.
func ParseLine(line string) (Stat, error) {
	var s Stat
	n, err := fmt.Sscanf(line, lineFormat, &s.ID, &s.DelayNS, &s.Count, &s.Reclaimed)
	if err != nil || n != 4 {
		return Stat{}, fmt.Errorf("malformed stat line %q", strings.TrimSpace(line))
	}
	return s, nil
}

// ErrStale says that a stat file's cgroup was removed: the file says so in
// its one line (staleLine), and has nothing else to say.
var ErrStale = errors.New("the cgroup was removed (stale stat file)")

// staleLine starts what the stat file of a removed cgroup prints.
const staleLine = "stale: "

// ParseStat parses a whole stat file: the seed's line, then one line per
// cause ("max: delay_ns 1, count 2, reclaimed 3"), "max_delay_ns: N",
// and the histograms' non-empty buckets ("hist_limit: 5:2 9:1"; max and
// high share hist_limit), and "throttle: delay_ns N, count N" or
// "throttle: unavailable" (Throttle.Measured). limit, max plus high, is
// checked against them.
// Lines it does not know are skipped, for a later cgrstat's sake.
func ParseStat(text string) (Stat, error) {
	if strings.HasPrefix(text, staleLine) {
		return Stat{}, ErrStale
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	if !sc.Scan() {
		return ParseLine("")
	}
	s, err := ParseLine(sc.Text())
	if err != nil {
		return s, err
	}
	var counters bpf.CgrstatCounters
	c, more := &counters, false
	var limit bpf.CgrstatCauseCounters
	var maxCount, proactiveCount uint64
	throttle := false
	causes := map[string][]*uint64{
		"limit":     {&limit.DelayNs, &limit.Count, &limit.Reclaimed},
		"max":       {&c.MaxLimitDelayNs, &maxCount, &c.MaxLimitReclaimed},
		"high":      {&c.HighLimitDelayNs, &c.HighLimitCount, &c.HighLimitReclaimed},
		"proactive": {&c.ProactiveDelayNs, &proactiveCount, &c.ProactiveReclaimed},
		"direct":    {&c.Direct.DelayNs, &c.Direct.Count, &c.Direct.Reclaimed},
		"forced":    {&c.Forced.DelayNs, &c.Forced.Count, &c.Forced.Reclaimed},
	}
	hists := map[string]*[106]uint64{"hist_limit": &c.LimitHist, "hist_proactive": &c.ProactiveHist}
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			return Stat{}, fmt.Errorf("malformed stat line %q", line)
		}
		switch f := causes[name]; {
		case f != nil:
			_, err = fmt.Sscanf(rest, " delay_ns %d, count %d, reclaimed %d", f[0], f[1], f[2])
		case hists[name] != nil:
			err = parseHist(rest, hists[name])
		case name == "max_delay_ns":
			_, err = fmt.Sscanf(rest, " %d", &c.MaxDelayNs)
		case name == "oom_kills":
			_, err = fmt.Sscanf(rest, " %d", &c.OomKills)
		case name == "throttle":
			throttle = strings.TrimSpace(rest) != "unavailable"
			if throttle {
				_, err = fmt.Sscanf(rest, " delay_ns %d, count %d", &c.Throttle.DelayNs, &c.Throttle.Count)
			}
		}
		if err != nil {
			return Stat{}, fmt.Errorf("malformed stat line %q", line)
		}
		more = more || causes[name] != nil
	}
	if !more {
		return s, nil // the seed's line alone
	}
	// One read prints one copy of the counters: its lines agree.
	full := FromCounters(s.ID, s.Path, c)
	full.Throttle.Measured = throttle
	if full.Memcg() != s.Memcg() {
		return Stat{}, fmt.Errorf("stat file of cgroup %d: the first line says %+v, the causes %+v", s.ID, s.Memcg(), full.Memcg())
	}
	if l := (Counters{limit.DelayNs, limit.Count, limit.Reclaimed}); l != full.Limit() {
		return Stat{}, fmt.Errorf("stat file of cgroup %d: limit says %+v, max and high %+v", s.ID, l, full.Limit())
	}
	if maxCount+c.HighLimitCount != full.LimitHist.Total() || proactiveCount != full.Causes[Proactive].Count {
		return Stat{}, fmt.Errorf("stat file of cgroup %d: the causes count %d max, %d high and %d proactive reclaims, the histograms %d limit and %d proactive",
			s.ID, maxCount, c.HighLimitCount, proactiveCount, full.LimitHist.Total(), full.Causes[Proactive].Count)
	}
	return full, nil
}

func parseHist(s string, h *[106]uint64) error {
	for _, f := range strings.Fields(s) {
		var b int
		var n uint64
		if _, err := fmt.Sscanf(f, "%d:%d", &b, &n); err != nil || b < 0 || b >= len(h) {
			return fmt.Errorf("bad bucket %q", f)
		}
		h[b] = n
	}
	return nil
}

// Flush flushes c's subtree and returns c's stat, read through a fresh iterator.
func Flush(p *loader.Pinned, c cgroup.Cgroup) (Stat, error) {
	b, err := cgroupiter.ReadOnce(p.Dump, c, pin.OrderFor(p.Record.Flush))
	if err != nil {
		return Stat{}, err
	}
	s, err := ParseStat(string(b))
	s.Path = c.Rel
	return s, err
}

// ReadFile reads and parses a pinned stat file, as cat would.
func ReadFile(path string) (Stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, fmt.Errorf("reading stat file: %w", err)
	}
	return ParseStat(string(b))
}

// Read returns the freshly flushed stats of each cgroup in cgs, and with all
// of every cgroup below them too, parents before children.
func Read(p *loader.Pinned, cgs []cgroup.Cgroup, all bool) ([]Stat, error) {
	var out []Stat
	for _, c := range cgs {
		if !all {
			s, err := Flush(p, c)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
			continue
		}
		below, err := Subtree(p, c)
		if err != nil {
			return nil, err
		}
		if out == nil { // one tree, as serve reads: no copy of ~2 KiB per cgroup
			out = below
			continue
		}
		out = append(out, below...)
	}
	return out, nil
}

// Subtree returns the stats of c and every cgroup below it from one
// consistent copy of the map (see bpf/cgrstat.c): a cgroup's value is its
// total plus the pending of every cgroup of its subtree, so that no flush
// is needed and every parent is exactly its own reclaim plus its children's.
func Subtree(p *loader.Pinned, c cgroup.Cgroup) ([]Stat, error) {
	members, err := Members(p, c)
	if err != nil {
		return nil, err
	}
	entries, err := Snapshot(p)
	if err != nil {
		return nil, err
	}
	out := hierarchical(members, entries, p.Record.CgroupVersion == 1)
	for i := range out {
		out[i].Throttle.Measured = p.Record.Throttle
	}
	return out, nil
}

// hierarchical computes each member's value; members come parents first.
// Most cgroups of a big tree have no entry: they cost no counter arithmetic.
func hierarchical(members []Member, entries map[uint64]*bpf.CgrstatCgstat, v1 bool) []Stat {
	index := make(map[uint64]int, len(members))
	for i, m := range members {
		index[m.ID] = i
	}
	// pending[i]: the pending counters of i's subtree, nil where there are none.
	pending := make([]*bpf.CgrstatCounters, len(members))
	add := func(i int, c *bpf.CgrstatCounters) {
		if pending[i] == nil {
			pending[i] = &bpf.CgrstatCounters{}
		}
		Add(pending[i], c)
	}
	// Children after parents: summing backwards folds each subtree into its top.
	for i := len(members) - 1; i >= 0; i-- {
		if e := entries[members[i].ID]; e != nil && e.Pending != (bpf.CgrstatCounters{}) {
			add(i, &e.Pending)
		}
		if j, ok := index[members[i].Parent]; ok && i > 0 && pending[i] != nil {
			add(j, pending[i])
		}
	}
	out := make([]Stat, len(members))
	for i, m := range members {
		var v bpf.CgrstatCounters
		if e := entries[m.ID]; e != nil {
			v = e.Total
		}
		if pending[i] != nil {
			Add(&v, pending[i])
		}
		out[i] = FromCounters(m.ID, m.Path, &v)
		out[i].figures(&m.Figures, v1)
	}
	return out
}

// Add adds b to a field by field, as the BPF flush does (maxima are maxima).
func Add(a, b *bpf.CgrstatCounters) {
	for _, f := range [][2]*uint64{
		{&a.MaxLimitDelayNs, &b.MaxLimitDelayNs}, {&a.MaxLimitReclaimed, &b.MaxLimitReclaimed},
		{&a.HighLimitDelayNs, &b.HighLimitDelayNs}, {&a.HighLimitReclaimed, &b.HighLimitReclaimed}, {&a.HighLimitCount, &b.HighLimitCount},
		{&a.ProactiveDelayNs, &b.ProactiveDelayNs}, {&a.ProactiveReclaimed, &b.ProactiveReclaimed},
		{&a.Direct.DelayNs, &b.Direct.DelayNs}, {&a.Direct.Count, &b.Direct.Count}, {&a.Direct.Reclaimed, &b.Direct.Reclaimed},
		{&a.Forced.DelayNs, &b.Forced.DelayNs}, {&a.Forced.Count, &b.Forced.Count}, {&a.Forced.Reclaimed, &b.Forced.Reclaimed},
		{&a.OomKills, &b.OomKills}, {&a.Throttle.DelayNs, &b.Throttle.DelayNs}, {&a.Throttle.Count, &b.Throttle.Count},
	} {
		*f[0] += *f[1]
	}
	for i := range a.LimitHist {
		a.LimitHist[i] += b.LimitHist[i]
		a.ProactiveHist[i] += b.ProactiveHist[i]
	}
	a.MaxDelayNs = max(a.MaxDelayNs, b.MaxDelayNs)
}

// snapshotTries bounds the retries of Snapshot. A flush step takes
// microseconds and a copy of the map milliseconds, so a retry is rare even
// with flushes running; 100 in a row mean something flushes without pause.
const snapshotTries = 100

// ErrMoving: flushes ran during every try to copy the map.
var ErrMoving = errors.New("the stats kept moving: no consistent copy of the map")

// Snapshot copies every entry of the stats map while no flush step ran:
// it reads the finished flush steps, the map, then the begun ones, and
// tries again unless they are equal.
func Snapshot(p *loader.Pinned) (map[uint64]*bpf.CgrstatCgstat, error) {
	var keys []uint64
	var vals []bpf.CgrstatCgstat
	for try := 0; try < snapshotTries; try++ {
		before, err := readSeq(p.Seq)
		if err != nil {
			return nil, err
		}
		var n int
		keys, vals, n, err = readAll(p.Stats, keys, vals)
		if err != nil {
			return nil, err
		}
		after, err := readSeq(p.Seq)
		if err != nil {
			return nil, err
		}
		if after.Begun != before.Done {
			continue
		}
		out := make(map[uint64]*bpf.CgrstatCgstat, n)
		for i := 0; i < n; i++ {
			out[keys[i]] = &vals[i]
		}
		return out, nil
	}
	return nil, ErrMoving
}

func readSeq(m *ebpf.Map) (bpf.CgrstatFlushSeq, error) {
	var s bpf.CgrstatFlushSeq
	if err := m.Lookup(uint32(0), &s); err != nil {
		return s, fmt.Errorf("reading the flush sequence: %w", err)
	}
	return s, nil
}

// batchSize is large enough that a hash bucket always fits.
const batchSize = 256

// readAll reads the whole map in batches into keys and vals, grown as
// needed (entries are 3.7 KB: a read sized for max_entries would allocate
// tens of MB for a map that holds a few cgroups).
func readAll(m *ebpf.Map, keys []uint64, vals []bpf.CgrstatCgstat) ([]uint64, []bpf.CgrstatCgstat, int, error) {
	var cursor ebpf.MapBatchCursor
	got := 0
	for {
		// Room for a whole batch: a batch needs room for a whole hash bucket.
		if len(keys) < got+batchSize {
			keys = append(keys, make([]uint64, got+batchSize-len(keys))...)
			vals = append(vals, make([]bpf.CgrstatCgstat, got+batchSize-len(vals))...)
		}
		n, err := m.BatchLookup(&cursor, keys[got:got+batchSize], vals[got:got+batchSize], nil)
		got += n
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, vals, got, nil
		}
		if err != nil {
			return keys, vals, 0, fmt.Errorf("reading the stats map: %w", err)
		}
	}
}

// Collector flushes through a load; stress uses it for the scratch
// cgroups it makes and removes.
type Collector struct{ P *loader.Pinned }

// Flush flushes c's subtree.
func (c Collector) Flush(cg cgroup.Cgroup) error {
	_, err := Flush(c.P, cg)
	return err
}

// Forget has nothing to do: the BPF side hands a removed cgroup's reclaim
// to its parent at rmdir and deletes its entry when the kernel releases it.
func (c Collector) Forget([]uint64) error { return nil }

// Notes is what a read has to say beside the numbers.
type Notes struct {
	// Lost is set when the BPF side could not record everything: the
	// numbers are then lower bounds.
	Lost *loader.Lost `json:"lost,omitempty"`
	// Stale are cgroups whose stat files were skipped: they were removed.
	Stale []string `json:"stale_stat_files,omitempty"`
}
