// Package reclaim is the model of one cgroup's reclaim statistics (Stat):
// what the BPF side's counters mean, how a stat file prints them and how
// JSON carries them. Reading them from a load is package readout's.
package reclaim

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cgrstat/cgrstat/bpf"
)

// FromCounters is the Stat of a cgroup whose hierarchical counters, as the
// BPF side keeps them, are c. Memory-cgroup reclaim's counts are its
// histograms' sums there, so they are here.
func FromCounters(id uint64, path string, c *bpf.CgrstatCounters) Stat {
	s := Stat{ID: id, Path: path, MaxNS: c.MaxDelayNs,
		LimitHist: HistOf(&c.LimitHist), ProactiveHist: HistOf(&c.ProactiveHist),
		Forced: Counters{c.Forced.DelayNs, c.Forced.Count, c.Forced.Reclaimed}, OOMKills: c.OomKills}
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
// high share hist_limit), and "throttle: delay_ns N, count N" with
// "hist_throttle: ..." or "throttle: unavailable" (Throttle.Measured).
// limit, max plus high, is checked against them, and the throttle's count
// against its histogram.
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
	var th bpf.CgrstatThrottleCounters
	var throttleCount uint64
	causes := map[string][]*uint64{
		"limit":     {&limit.DelayNs, &limit.Count, &limit.Reclaimed},
		"max":       {&c.MaxLimitDelayNs, &maxCount, &c.MaxLimitReclaimed},
		"high":      {&c.HighLimitDelayNs, &c.HighLimitCount, &c.HighLimitReclaimed},
		"proactive": {&c.ProactiveDelayNs, &proactiveCount, &c.ProactiveReclaimed},
		"direct":    {&c.Direct.DelayNs, &c.Direct.Count, &c.Direct.Reclaimed},
		"forced":    {&c.Forced.DelayNs, &c.Forced.Count, &c.Forced.Reclaimed},
	}
	hists := map[string]*[106]uint64{"hist_limit": &c.LimitHist, "hist_proactive": &c.ProactiveHist, "hist_throttle": &th.Hist}
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
				_, err = fmt.Sscanf(rest, " delay_ns %d, count %d", &th.DelayNs, &throttleCount)
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
	full.Throttle = ThrottleFrom(&th, throttle)
	if full.Throttle.Count != throttleCount {
		return Stat{}, fmt.Errorf("stat file of cgroup %d: the throttle counts %d sleeps, its histogram %d", s.ID, throttleCount, full.Throttle.Count)
	}
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

// ReadFile reads and parses a pinned stat file, as cat would.
func ReadFile(path string) (Stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, fmt.Errorf("reading stat file: %w", err)
	}
	return ParseStat(string(b))
}

// Add adds b to a field by field, as the BPF flush does (maxima are maxima).
func Add(a, b *bpf.CgrstatCounters) {
	for _, f := range [][2]*uint64{
		{&a.MaxLimitDelayNs, &b.MaxLimitDelayNs}, {&a.MaxLimitReclaimed, &b.MaxLimitReclaimed},
		{&a.HighLimitDelayNs, &b.HighLimitDelayNs}, {&a.HighLimitReclaimed, &b.HighLimitReclaimed}, {&a.HighLimitCount, &b.HighLimitCount},
		{&a.ProactiveDelayNs, &b.ProactiveDelayNs}, {&a.ProactiveReclaimed, &b.ProactiveReclaimed},
		{&a.Direct.DelayNs, &b.Direct.DelayNs}, {&a.Direct.Count, &b.Direct.Count}, {&a.Direct.Reclaimed, &b.Direct.Reclaimed},
		{&a.Forced.DelayNs, &b.Forced.DelayNs}, {&a.Forced.Count, &b.Forced.Count}, {&a.Forced.Reclaimed, &b.Forced.Reclaimed},
		{&a.OomKills, &b.OomKills},
	} {
		*f[0] += *f[1]
	}
	for i := range a.LimitHist {
		a.LimitHist[i] += b.LimitHist[i]
		a.ProactiveHist[i] += b.ProactiveHist[i]
	}
	a.MaxDelayNs = max(a.MaxDelayNs, b.MaxDelayNs)
}
