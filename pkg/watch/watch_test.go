package watch

import (
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/pkg/monitor"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

func stat(id uint64, path string, delayNS, count, pages uint64) monitor.Cgroup {
	s := monitor.Cgroup{ID: id, Path: path, DelayNS: delayNS, Count: count, Reclaimed: pages}
	s.MaxHist[reclaim.BucketOf(delayNS/max(count, 1))] = count
	return s
}

func snapshots() (prev, cur *monitor.Snapshot) {
	t0 := time.Unix(1000, 0)
	prev = &monitor.Snapshot{At: t0, Cgroups: []monitor.Cgroup{
		stat(1, "/", 0, 0, 0), stat(2, "/a", 0, 0, 0), stat(3, "/a/x", 0, 0, 0), stat(4, "/b", 0, 0, 0),
		stat(9, "/gone", 5e9, 5, 5),
	}}
	cur = &monitor.Snapshot{At: t0.Add(2 * time.Second), Cgroups: []monitor.Cgroup{
		stat(1, "/", 30e6, 30, 3000), stat(2, "/a", 10e6, 10, 1000), stat(3, "/a/x", 10e6, 10, 1000),
		stat(4, "/b", 20e6, 20, 2000), stat(5, "/b/new", 20e6, 20, 2000),
	}}
	return prev, cur
}

func TestRates(t *testing.T) {
	prev, cur := snapshots()
	rows := Rates(prev, cur, monitor.Filter{Depth: -1})
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5 (the gone cgroup is not shown)", len(rows))
	}
	b := rows[3]
	if b.Path != "/b" || b.Reclaims != 10 || b.Stall != 0.01 || b.Pages != 1000 {
		t.Errorf("/b over 2s: %+v, want 10 reclaims/s, 10 ms/s, 1000 pages/s", b)
	}
	if n := rows[4]; n.Path != "/b/new" || n.Reclaims != 10 || n.Parent != 3 {
		t.Errorf("/b/new, absent before, counts from zero under /b: %+v", n)
	}
	// 1 ms per reclaim: the interval's p99 lies in 1 ms's bucket.
	lo, hi := reclaim.BucketBounds(reclaim.BucketOf(1e6))
	if p := rows[0].P99 * 1e9; p < float64(lo) || p >= float64(hi) {
		t.Errorf("p99 %g ns, want in [%d, %d)", p, lo, hi)
	}
	if got := Rates(prev, cur, monitor.Filter{Depth: 1}); len(got) != 3 {
		t.Errorf("--depth 1: %d rows, want /, /a, /b", len(got))
	}
}

func TestRatesCounterWentBack(t *testing.T) {
	prev, cur := snapshots()
	prev.Cgroups[3] = stat(4, "/b", 99e9, 99, 99) // more than now: reloaded
	rows := Rates(prev, cur, monitor.Filter{Depth: -1})
	if rows[3].Reclaims != 10 {
		t.Errorf("after a reload /b counts from zero: %+v", rows[3])
	}
}

func TestTreeAndFlat(t *testing.T) {
	prev, cur := snapshots()
	rows := Rates(prev, cur, monitor.Filter{Depth: -1})
	var names []string
	for _, r := range Tree(rows, ByStall) {
		names = append(names, strings.Repeat(".", r.Level)+r.Name)
	}
	// Siblings by stall time, the busier subtree (/b) first.
	if got := strings.Join(names, " "); got != "/ .b ..new .a ..x" {
		t.Errorf("tree: %s", got)
	}
	names = nil
	for _, r := range Flat(rows, ByPath) {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, " "); got != "/ /a /a/x /b /b/new" {
		t.Errorf("flat by path: %s", got)
	}
}

func TestWriteFitsTheView(t *testing.T) {
	prev, cur := snapshots()
	rows := Rates(prev, cur, monitor.Filter{Depth: -1})
	var b strings.Builder
	if err := Write(&b, View{Sort: ByStall, Tree: true, Interval: time.Second, Width: 40, Height: 4}, cur, rows, TextEOL); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Errorf("%d lines in a 4-line terminal:\n%s", len(lines), b.String())
	}
	for _, l := range lines {
		if len(l) > 40 {
			t.Errorf("line wider than 40: %q", l)
		}
	}
	if f := strings.Fields(lines[2]); len(f) < 3 || f[0] != "15.000" || f[1] != "15.0" || f[2] != "1500.0" {
		t.Errorf("first row is not the root with 15 ms/s: %q", lines[2])
	}
}

func TestParseKey(t *testing.T) {
	for _, k := range Keys {
		if got, err := ParseKey(string(k)); err != nil || got != k {
			t.Errorf("ParseKey(%s) = %s, %v", k, got, err)
		}
	}
	if _, err := ParseKey("cpu"); err == nil {
		t.Error("ParseKey(cpu) accepted")
	}
	if ByPath.Next() != ByStall {
		t.Error("s does not cycle back to stall")
	}
}

// TestRatesPressureAndOOM: PSI is memory.pressure some per second where the
// kernel has it, -1 where not; OOM counts the interval's kills; both show
// as columns and sort.
func TestRatesPressureAndOOM(t *testing.T) {
	prev, cur := snapshots()
	prev.Cgroups[1].Pressure = reclaim.Pressure{Read: true, SomeNS: 1e9}
	cur.Cgroups[1].Pressure = reclaim.Pressure{Read: true, SomeNS: 1.5e9} // /a: 0.5 s in 2 s
	prev.Cgroups[3].OOMKills, cur.Cgroups[3].OOMKills = 1, 3              // /b: 2 kills
	rows := Rates(prev, cur, monitor.Filter{Depth: -1})
	if a, b := rows[1], rows[3]; a.PSI != 0.25 || b.PSI != -1 || b.OOMKills != 2 || a.OOMKills != 0 {
		t.Errorf("/a: PSI %g, OOM %d; /b: PSI %g, OOM %d; want 0.25, 0, -1, 2", a.PSI, a.OOMKills, b.PSI, b.OOMKills)
	}
	var out strings.Builder
	if err := Write(&out, View{Sort: ByOOM}, cur, rows, TextEOL); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[1], "PSI ms/s") || !strings.Contains(lines[1], "OOM") {
		t.Errorf("header %q lacks PSI and OOM", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) < 7 || f[len(f)-1] != "b" && f[len(f)-1] != "/b" || f[5] != "2" {
		t.Errorf("sorted by oom, the first row is /b with 2 kills: %q", lines[2])
	}
	if f := strings.Fields(out.String()); !strings.Contains(out.String(), " 250.0 ") {
		t.Errorf("/a's PSI 250.0 ms/s missing:\n%s (%d fields)", out.String(), len(f))
	}
}
