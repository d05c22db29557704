// Package watch turns two snapshots into per-cgroup rates and lays them out
// as a top-like frame. It holds no terminal code: the command owns the
// terminal, this package only computes and formats.
package watch

import (
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// Row is one cgroup's activity over the last interval.
type Row struct {
	Path     string
	Depth    int
	Parent   int     // index of the parent row in the same slice, -1 for none
	Name     string  // what the frame shows: the path, or in a tree the part below the parent
	Level    int     // indentation in a tree
	Reclaims float64 // reclaims per second
	Stall    float64 // seconds spent in reclaim per second of wall time
	Pages    float64 // pages reclaimed per second
	P99      float64 // seconds: the interval's 99th percentile reclaim latency, 0 without reclaim
	// PSI is memory.pressure's some total per second of wall time (the
	// share of time some task stalled on memory), -1 where the kernel has
	// none (cgroup v1, the root). It moves in steps: the kernel folds it
	// every 2 s.
	PSI      float64
	OOMKills uint64 // tasks the OOM killer chose in the interval
	// Throttle is the time the cgroup's tasks were throttled after
	// memory.high per second of wall time, -1 where the kernel does not
	// let it be measured (reclaim.Throttle).
	Throttle float64
}

// Rates computes each cgroup's rates between prev and cur, one row per row
// of cur (which the read filtered), with the same parents. A cgroup absent
// from prev (new, or recreated with a new id) counts from zero: its totals
// started with it.
func Rates(prev, cur *readout.Snapshot) []Row {
	secs := cur.At.Sub(prev.At).Seconds()
	if secs <= 0 {
		secs = 1
	}
	before := make(map[uint64]*reclaim.Stat, len(prev.Rows))
	for i := range prev.Rows {
		before[prev.Rows[i].ID] = &prev.Rows[i].Stat
	}
	rows := make([]Row, 0, len(cur.Rows))
	var zero reclaim.Stat
	for i := range cur.Rows {
		c := &cur.Rows[i].Stat
		p, ok := before[c.ID]
		if !ok || wentBack(p, c) {
			p = &zero
		}
		h, before := c.Hist(), p.Hist()
		for b := range h {
			h[b] -= before[b]
		}
		psi := -1.0
		if c.Pressure.Read {
			// A cgroup new since prev counts from its own start, as its reclaim does.
			was := p.Pressure.SomeNS
			if !p.Pressure.Read || c.Pressure.SomeNS < was {
				was = 0
			}
			psi = float64(c.Pressure.SomeNS-was) / 1e9 / secs
		}
		throttle := -1.0
		if c.Throttle.Measured {
			throttle = float64(c.Throttle.DelayNS-min(p.Throttle.DelayNS, c.Throttle.DelayNS)) / 1e9 / secs
		}
		rows = append(rows, Row{Path: c.Path, Throttle: throttle, Depth: cur.Rows[i].Depth, Parent: cur.Rows[i].Parent,
			Reclaims: float64(c.Count-p.Count) / secs, Stall: float64(c.DelayNS-p.DelayNS) / 1e9 / secs,
			Pages: float64(c.Reclaimed-p.Reclaimed) / secs, P99: float64(h.Quantile(0.99)) / 1e9,
			PSI: psi, OOMKills: c.OOMKills - min(p.OOMKills, c.OOMKills)})
	}
	return rows
}

// wentBack says a counter decreased: the maps were reloaded, or the id was
// reused. The cgroup then counts from zero.
func wentBack(prev, cur *reclaim.Stat) bool {
	if cur.Count < prev.Count || cur.DelayNS < prev.DelayNS || cur.Reclaimed < prev.Reclaimed {
		return true
	}
	h, before := cur.Hist(), prev.Hist()
	for b := range h {
		if h[b] < before[b] {
			return true
		}
	}
	return false
}
