package watch

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

func stat(id uint64, path string, delayNS, count, pages uint64) reclaim.Stat {
	s := reclaim.Stat{ID: id, Path: path, DelayNS: delayNS, Count: count, Reclaimed: pages}
	s.Own()
	s.LimitHist[reclaim.BucketOf(delayNS/max(count, 1))] = count
	return s
}

// snapshot is a read of stats at at, each row's parent the closest
// earlier row above it, as the read gives them.
func snapshot(at time.Time, stats ...reclaim.Stat) *readout.Snapshot {
	s := &readout.Snapshot{At: at, Cgroups: len(stats)}
	for i := range stats {
		r := readout.Row{Stat: stats[i], Parent: -1, Depth: readout.Depth(stats[i].Path)}
		for j := i - 1; j >= 0; j-- {
			if p := stats[j].Path; p != r.Path && strings.HasPrefix(r.Path, strings.TrimSuffix(p, "/")+"/") {
				r.Parent = j
				break
			}
		}
		s.Rows = append(s.Rows, r)
	}
	return s
}

func snapshots() (prev, cur *readout.Snapshot) {
	t0 := time.Unix(1000, 0)
	prev = snapshot(t0,
		stat(1, "/", 0, 0, 0), stat(2, "/a", 0, 0, 0), stat(3, "/a/x", 0, 0, 0), stat(4, "/b", 0, 0, 0),
		stat(9, "/gone", 5e9, 5, 5),
	)
	cur = snapshot(t0.Add(2*time.Second),
		stat(1, "/", 30e6, 30, 3000), stat(2, "/a", 10e6, 10, 1000), stat(3, "/a/x", 10e6, 10, 1000),
		stat(4, "/b", 20e6, 20, 2000), stat(5, "/b/new", 20e6, 20, 2000),
	)
	return prev, cur
}

func TestRates(t *testing.T) {
	prev, cur := snapshots()
	rows := Rates(prev, cur)
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
}

func TestRatesCounterWentBack(t *testing.T) {
	prev, cur := snapshots()
	prev.Rows[3].Stat = stat(4, "/b", 99e9, 99, 99) // more than now: reloaded
	rows := Rates(prev, cur)
	if rows[3].Reclaims != 10 {
		t.Errorf("after a reload /b counts from zero: %+v", rows[3])
	}
}

func TestTreeAndFlat(t *testing.T) {
	prev, cur := snapshots()
	rows := Rates(prev, cur)
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
	rows := Rates(prev, cur)
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

// TestWriteNarrowFlat is issue 17's reproduction: at 60 columns a flat
// frame cut every path to its first 12 bytes ("/process_api"), so no row
// could be told from another. Names lose their middle instead, as in
// read's table, and each row keeps its own end. The PSI and OOM columns
// since then take 16 more and the throttle's 11, so the same squeeze is
// now at 87 columns.
func TestWriteNarrowFlat(t *testing.T) {
	var rows []Row
	for _, leaf := range []string{"child1_1", "child1_2", "child2_1"} {
		rows = append(rows, Row{Path: "/process_api/18f43c0f2d606e7a9741858f2d2c9320/test/" + leaf, Parent: -1, Stall: 0.01, Reclaims: 1})
	}
	var b strings.Builder
	cur := &readout.Snapshot{At: time.Unix(1000, 0)}
	if err := Write(&b, View{Sort: ByPath, Interval: time.Second, Width: 87}, cur, rows, TextEOL); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	seen := map[string]bool{}
	for i, l := range lines[header:] {
		if n := utf8.RuneCountInString(l); n > 87 {
			t.Errorf("row %d is %d columns wide: %q", i, n, l)
		}
		f := strings.Fields(l)
		name := f[len(f)-1]
		if !strings.HasPrefix(name, "/pr") || !strings.Contains(name, "…") || !strings.HasSuffix(name, rows[i].Path[len(rows[i].Path)-8:]) {
			t.Errorf("row %d: name %q, want the path's start, …, and its end", i, name)
		}
		seen[name] = true
	}
	if len(seen) != len(rows) {
		t.Errorf("%d distinct names for %d cgroups:\n%s", len(seen), len(rows), b.String())
	}
}

// TestWriteLatencyAsRead: P99 is printed as read prints latencies (two or
// three significant digits), not with a fourth digit.
func TestWriteLatencyAsRead(t *testing.T) {
	for _, tt := range []struct {
		p99  float64
		want string
	}{{0.1234, "123ms"}, {0.0012345, "1.2ms"}, {0.00001234, "12µs"}, {1.5, "1.5s"}, {0, "-"}} {
		if got := latency(tt.p99); got != tt.want {
			t.Errorf("latency(%g) = %q, want %q", tt.p99, got, tt.want)
		}
	}
}

// TestWriteEscapesNames: a cgroup named with terminal escapes is shown
// with them quoted, not sent to the terminal, in tree and flat frames.
func TestWriteEscapesNames(t *testing.T) {
	rows := []Row{
		{Path: "/top", Parent: -1, Stall: 0.01},
		{Path: "/top/a\x1b[2J\x1b[31mb", Parent: 0, Stall: 0.01},
	}
	cur := &readout.Snapshot{At: time.Unix(1000, 0)}
	for _, tree := range []bool{true, false} {
		var b strings.Builder
		if err := Write(&b, View{Sort: ByPath, Tree: tree, Interval: time.Second, Width: 120}, cur, rows, RawEOL); err != nil {
			t.Fatal(err)
		}
		frame := strings.ReplaceAll(b.String(), RawEOL, "\n")
		if strings.ContainsRune(frame, 0x1b) || !strings.Contains(frame, `a\x1b[2J\x1b[31mb`) {
			t.Errorf("tree %v: the name is not escaped:\n%q", tree, frame)
		}
	}
}

// TestShortNames: pods and containers go by their short names, a
// container below its pod's row without the pod.
func TestShortNames(t *testing.T) {
	pod := "/kubepods/burstable/pod0b3c9a5e-8f2d-4c1e-9a7b-2d4e6f8a1c3b"
	ctr := pod + "/crio-3f9c2a1b6d8e4f70a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"
	snap := snapshot(time.Unix(1000, 0), stat(1, "/kubepods", 0, 0, 0), stat(2, pod, 0, 0, 0), stat(3, ctr, 0, 0, 0))
	rows := Rates(snap, snap)
	var names []string
	for _, r := range Tree(rows, ByPath) {
		names = append(names, strings.Repeat(".", r.Level)+r.Name)
	}
	if got := strings.Join(names, "|"); got != "/kubepods|.pod 0b3c9a5e|..cri-o 3f9c2a1b" {
		t.Errorf("tree: %s", got)
	}
	names = nil
	for _, r := range Flat(rows, ByPath) {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, "|"); got != "/kubepods|pod 0b3c9a5e|pod 0b3c9a5e · cri-o 3f9c2a1b" {
		t.Errorf("flat: %s", got)
	}
}

// TestRatesPressureAndOOM: PSI is memory.pressure some per second where the
// kernel has it, -1 where not; OOM counts the interval's kills; both show
// as columns and sort.
func TestRatesPressureAndOOM(t *testing.T) {
	prev, cur := snapshots()
	prev.Rows[1].Pressure = reclaim.Pressure{Read: true, SomeNS: 1e9}
	cur.Rows[1].Pressure = reclaim.Pressure{Read: true, SomeNS: 1.5e9} // /a: 0.5 s in 2 s
	prev.Rows[3].OOMKills, cur.Rows[3].OOMKills = 1, 3                 // /b: 2 kills
	rows := Rates(prev, cur)
	if a, b := rows[1], rows[3]; a.PSI != 0.25 || b.PSI != -1 || b.OOMKills != 2 || a.OOMKills != 0 {
		t.Errorf("/a: PSI %g, OOM %d; /b: PSI %g, OOM %d; want 0.25, 0, -1, 2", a.PSI, a.OOMKills, b.PSI, b.OOMKills)
	}
	var out strings.Builder
	if err := Write(&out, View{Sort: ByOOM}, cur, rows, TextEOL); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[1], "PSI ms/s") || !strings.Contains(lines[1], "OOM") || !strings.Contains(lines[1], "THROT ms/s") {
		t.Errorf("header %q lacks PSI and OOM", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) < 7 || f[len(f)-1] != "b" && f[len(f)-1] != "/b" || f[6] != "2" || f[5] != "n/a" {
		t.Errorf("sorted by oom, the first row is /b with 2 kills and no throttle measured: %q", lines[2])
	}
	if f := strings.Fields(out.String()); !strings.Contains(out.String(), " 250.0 ") {
		t.Errorf("/a's PSI 250.0 ms/s missing:\n%s (%d fields)", out.String(), len(f))
	}
}

// TestRatesThrottle: the throttle is its time per second where measured,
// -1 (shown n/a, never 0) where the kernel refused to measure it, and a
// sort key.
func TestRatesThrottle(t *testing.T) {
	prev, cur := snapshots()
	for _, s := range []*readout.Snapshot{prev, cur} {
		for i := range s.Rows {
			s.Rows[i].Throttle.Measured = s.Rows[i].Path != "/b"
		}
	}
	prev.Rows[1].Throttle.DelayNS, cur.Rows[1].Throttle.DelayNS = 1e9, 1.2e9 // /a: 0.2 s in 2 s
	rows := Rates(prev, cur)
	if a, b := rows[1], rows[3]; a.Throttle != 0.1 || b.Throttle != -1 {
		t.Errorf("/a throttle %g, /b %g; want 0.1, -1", a.Throttle, b.Throttle)
	}
	var out strings.Builder
	if err := Write(&out, View{Sort: ByThrottle}, cur, rows, TextEOL); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if f := strings.Fields(lines[2]); len(f) < 8 || f[len(f)-1] != "a" && f[len(f)-1] != "/a" || f[5] != "100.0" {
		t.Errorf("sorted by throttle, the first row is /a at 100.0 ms/s: %q", lines[2])
	}
	if !strings.Contains(out.String(), " n/a ") {
		t.Errorf("/b's unmeasured throttle is not n/a:\n%s", out.String())
	}
}
