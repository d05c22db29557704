package format

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/identity"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// MaxWidth is the widest line Table writes, unless the numbers alone are
// wider (a cgroup name is never cut below minName).
const MaxWidth = 120

const minName = 16

// readHeader is the table's header. RECLAIMS, DELAY, PAGES and the
// quantiles are memory-cgroup reclaim, the seed's counters; MEM.MAX (v1:
// the limit), MEM.HIGH and PROACTIVE split DELAY by cause; DIRECT is
// global direct reclaim, outside
// DELAY; FORCED is the memory-cgroup reclaim that this subtree's limits
// (or memory.reclaim) made tasks stall in, wherever those tasks were.
// The throttle after memory.high is in the JSON, read --hist, watch and
// serve: a column here would leave the names too little of MaxWidth.
//
// P90 is in the JSON and read --hist, not here: the two limits' columns
// took its room in MaxWidth.
var readHeader = []string{"CGROUP", "RECLAIMS", "DELAY", "PAGES", "P50", "P99", "MAX",
	"MEM.MAX", "MEM.HIGH", "PROACTIVE", "DIRECT", "FORCED"}

// Table writes one row per cgroup: how badly (count, total delay, pages,
// quantiles, max) and why (delay by cause, and forced on the subtree), in
// one table of at most MaxWidth columns, so that "/pods/a stalls because
// /pods hits memory.max" is read off two rows of it. A cgroup below an
// earlier row is indented under it by its relative name.
func Table(w io.Writer, stats []reclaim.Stat) error {
	t := newTable(readHeader...)
	for i := range stats {
		t.append(row(&stats[i])...)
	}
	room := MaxWidth // for the names: what the numbers and their gaps leave
	for _, cw := range t.widths()[1:] {
		room -= cw + 2
	}
	for i, name := range treeNames(stats) {
		t.rows[i+1][0] = Elide(escape.String(name), max(room, minName))
	}
	return t.write(w)
}

func row(s *reclaim.Stat) []string {
	dist := []string{"-", "-", "-"} // p50, p99, max
	if s.Count > 0 {
		q := s.Quantiles()
		dist = []string{Compact(q[0]), Compact(q[2]), Compact(s.MaxNS)}
	}
	out := []string{"", strconv.FormatUint(s.Count, 10), Compact(s.DelayNS), strconv.FormatUint(s.Reclaimed, 10)}
	out = append(out, dist...)
	return append(out, Compact(s.Causes[reclaim.Max].DelayNS), Compact(s.Causes[reclaim.High].DelayNS),
		Compact(s.Causes[reclaim.Proactive].DelayNS),
		Compact(s.Causes[reclaim.Direct].DelayNS), Compact(s.Forced.DelayNS))
}

// treeNames names each cgroup for the table: a cgroup below an earlier
// row is indented two spaces per level under it, by its path relative to
// it; any other by its whole path; a pod or container by its short name
// ("pod 0b3c9a5e · containerd 3f9c2a1b"), which says more than its
// 100-character path. read --all lists parents before
// children, so its rows read as the tree.
func treeNames(stats []reclaim.Stat) []string {
	var above []string // paths of the rows the current one may be below
	out := make([]string, len(stats))
	for i, s := range stats {
		for len(above) > 0 && !below(s.Path, above[len(above)-1]) {
			above = above[:len(above)-1]
		}
		if len(above) == 0 {
			out[i] = s.Path
		} else {
			top := above[len(above)-1]
			out[i] = strings.Repeat("  ", len(above)) + strings.TrimPrefix(strings.TrimPrefix(s.Path, top), "/")
		}
		parent := ""
		if len(above) > 0 {
			parent = above[len(above)-1]
		}
		if short := identity.Name(s.Path, parent); short != "" {
			out[i] = strings.Repeat("  ", len(above)) + short
		}
		above = append(above, s.Path)
	}
	return out
}

// below says whether path is strictly below dir.
func below(path, dir string) bool {
	return path != dir && strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// Elide shortens name to n runes by replacing the middle of what follows
// its indentation with "…". It keeps more of the end, which tells apart
// names such as kubepods-burstable-pod<uid>.slice. read's table and
// watch's frames cut names with it.
func Elide(name string, n int) string {
	r := []rune(name)
	if len(r) <= n {
		return name
	}
	if n <= 0 {
		return ""
	}
	indent := len(r) - len([]rune(strings.TrimLeft(name, " ")))
	indent = max(min(indent, n-minName/2), 0)
	keep := n - indent - 1
	head := keep / 3
	tail := keep - head
	return string(r[:indent+head]) + "…" + string(r[len(r)-tail:])
}

// Compact prints nanoseconds in two or three significant digits, at most
// five columns below 100,000 s: 0, 850ns, 1.2µs, 12µs, 850µs, 4.6ms,
// 1.2s, 3600s. Quantiles are estimates within a quarter octave anyway;
// more digits would be noise.
func Compact(ns uint64) string {
	if ns < 1000 {
		if ns == 0 {
			return "0"
		}
		return fmt.Sprintf("%dns", ns)
	}
	v := float64(ns)
	for _, u := range []struct {
		div  float64
		name string
	}{{1e3, "µs"}, {1e6, "ms"}, {1e9, "s"}} {
		x := v / u.div
		switch {
		case x < 9.95:
			return fmt.Sprintf("%.1f%s", x, u.name)
		case x < 999.5 || u.name == "s":
			return fmt.Sprintf("%.0f%s", x, u.name)
		}
	}
	panic("not reached")
}
