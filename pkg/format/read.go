package format

import (
	"io"
	"strconv"
	"strings"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/identity"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// MaxWidth is the widest line Table writes, unless the numbers alone are
// wider (a cgroup name is never cut below minName).
const MaxWidth = 120

const minName = 16

// readHeader is the table's header. RECLAIMS, DELAY, PAGES and the
// quantiles are memory-cgroup reclaim, the seed's counters; MEM.MAX (v1:
// the limit), MEM.HIGH and PROACTIVE split DELAY by cause; DIRECT is
// global direct reclaim, outside DELAY; THROT (as watch calls it) is the
// penalty sleep after memory.high, not reclaim either ("n/a" where the
// kernel refuses to let it be measured); FORCED is the memory-cgroup
// reclaim that this subtree's limits (or memory.reclaim) made tasks stall
// in, wherever those tasks were.
//
// P50 and P90 are in the JSON and read --hist, not here: the two limits'
// columns took P90's room in MaxWidth, THROT P50's (for a stall the
// tail, P99 and MAX, tells how badly).
var readHeader = []string{"CGROUP", "RECLAIMS", "DELAY", "PAGES", "P99", "MAX",
	"MEM.MAX", "MEM.HIGH", "PROACTIVE", "DIRECT", "THROT", "FORCED"}

// Table writes one row per cgroup: how badly (count, total delay, pages,
// quantiles, max) and why (delay by cause, and forced on the subtree), in
// one table of at most MaxWidth columns, so that "/pods/a stalls because
// /pods hits memory.max" is read off two rows of it. A cgroup below an
// earlier row is indented under it by its relative name.
func Table(w io.Writer, rows []readout.Row) error {
	t := newTable(readHeader...)
	for i := range rows {
		t.append(row(&rows[i].Stat)...)
	}
	room := MaxWidth // for the names: what the numbers and their gaps leave
	for _, cw := range t.widths()[1:] {
		room -= cw + 2
	}
	for i, name := range treeNames(rows) {
		t.rows[i+1][0] = Elide(escape.String(name), max(room, minName))
	}
	return t.write(w)
}

func row(s *reclaim.Stat) []string {
	dist := []string{"-", "-"} // p99, max
	if s.Count > 0 {
		q := s.Quantiles()
		dist = []string{Latency(q[2]), Latency(s.MaxNS)}
	}
	out := []string{"", strconv.FormatUint(s.Count, 10), Latency(s.DelayNS), strconv.FormatUint(s.Reclaimed, 10)}
	out = append(out, dist...)
	throttle := "n/a"
	if s.Throttle.Measured {
		throttle = Latency(s.Throttle.DelayNS)
	}
	return append(out, Latency(s.Causes[reclaim.Max].DelayNS), Latency(s.Causes[reclaim.High].DelayNS),
		Latency(s.Causes[reclaim.Proactive].DelayNS),
		Latency(s.Causes[reclaim.Direct].DelayNS), throttle, Latency(s.Forced.DelayNS))
}

// treeNames names each cgroup for the table: a cgroup below an earlier
// row (its Parent) is indented two spaces per level under it, by its path
// relative to it; any other by its whole path; a pod or container by its
// short name ("pod 0b3c9a5e · containerd 3f9c2a1b"), which says more than
// its 100-character path. Rows come parents before children, so the
// table reads as the tree.
func treeNames(rows []readout.Row) []string {
	out := make([]string, len(rows))
	levels := make([]int, len(rows))
	for i := range rows {
		r := &rows[i]
		parent := ""
		if r.Parent >= 0 {
			parent = rows[r.Parent].Path
			levels[i] = levels[r.Parent] + 1
		}
		indent := strings.Repeat("  ", levels[i])
		switch short := identity.Name(r.Path, parent); {
		case short != "":
			out[i] = indent + short
		case parent == "":
			out[i] = r.Path
		default:
			out[i] = indent + strings.TrimPrefix(strings.TrimPrefix(r.Path, parent), "/")
		}
	}
	return out
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
