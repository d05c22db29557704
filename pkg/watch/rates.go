// Package watch turns two snapshots into per-cgroup rates and lays them out
// as a top-like frame. It holds no terminal code: the command owns the
// terminal, this package only computes and formats.
package watch

import (
	"github.com/cgrstat/cgrstat/pkg/monitor"
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

// Rates computes each cgroup's rates between prev and cur, for the cgroups
// of cur that pass filter. A cgroup absent from prev (new, or recreated with
// a new id) counts from zero: its totals started with it.
func Rates(prev, cur *monitor.Snapshot, filter monitor.Filter) []Row {
	secs := cur.At.Sub(prev.At).Seconds()
	if secs <= 0 {
		secs = 1
	}
	before := make(map[uint64]*monitor.Cgroup, len(prev.Cgroups))
	for i := range prev.Cgroups {
		before[prev.Cgroups[i].ID] = &prev.Cgroups[i]
	}
	rows := make([]Row, 0, len(cur.Cgroups))
	index := map[string]int{}
	var zero monitor.Cgroup
	for i := range cur.Cgroups {
		c := &cur.Cgroups[i]
		if !filter.Keep(c) {
			continue
		}
		p, ok := before[c.ID]
		if !ok || wentBack(p, c) {
			p = &zero
		}
		h, before := c.Hist(), p.Hist()
		for b := range h {
			h[b] -= before[b]
		}
		index[c.Path] = len(rows)
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
		rows = append(rows, Row{Path: c.Path, Throttle: throttle, Depth: monitor.Depth(c.Path), Parent: parentIndex(index, c.Path),
			Reclaims: float64(c.Count-p.Count) / secs, Stall: float64(c.DelayNS-p.DelayNS) / 1e9 / secs,
			Pages: float64(c.Reclaimed-p.Reclaimed) / secs, P99: float64(h.Quantile(0.99)) / 1e9,
			PSI: psi, OOMKills: c.OOMKills - min(p.OOMKills, c.OOMKills)})
	}
	return rows
}

// wentBack says a counter decreased: the maps were reloaded, or the id was
// reused. The cgroup then counts from zero.
func wentBack(prev, cur *monitor.Cgroup) bool {
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

// parentIndex finds the closest shown ancestor: with --match, a parent may
// be filtered out while its child is shown.
func parentIndex(index map[string]int, path string) int {
	for p := parentPath(path); p != ""; p = parentPath(p) {
		if i, ok := index[p]; ok {
			return i
		}
	}
	return -1
}

func parentPath(p string) string {
	if p == "/" || p == "" {
		return ""
	}
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
