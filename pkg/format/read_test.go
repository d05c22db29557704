package format

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// stat makes a cgroup's stat from its memory-cgroup reclaim latencies:
// every third one proactive, the others limit, 32 pages each.
func stat(path string, ns ...uint64) reclaim.Stat {
	s := reclaim.Stat{Path: path}
	for i, v := range ns {
		c := reclaim.Max
		if i%3 == 2 {
			c = reclaim.Proactive
		}
		s.Observe(c, v, 32, false)
	}
	return s
}

// snapshotOf is a snapshot of stats, each row's parent the closest
// earlier row above it, as a read would give them.
func snapshotOf(stats []reclaim.Stat) *readout.Snapshot {
	s := &readout.Snapshot{Rows: make([]readout.Row, len(stats)), Cgroups: len(stats)}
	for i := range stats {
		s.Rows[i] = readout.Row{Stat: stats[i], Parent: -1, Depth: readout.Depth(stats[i].Path)}
		for j := i - 1; j >= 0; j-- {
			if dir := strings.TrimSuffix(stats[j].Path, "/") + "/"; stats[i].Path != stats[j].Path && strings.HasPrefix(stats[i].Path, dir) {
				s.Rows[i].Parent = j
				break
			}
		}
	}
	return s
}

func render(t *testing.T, stats ...reclaim.Stat) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := Table(&buf, snapshotOf(stats).Rows); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func TestTable(t *testing.T) {
	pods := stat("/pods", 20_000, 30_000, 800_000_000)
	pods.Causes[reclaim.Direct] = reclaim.Counters{DelayNS: 12_300_000, Count: 4, Reclaimed: 100}
	pods.Forced = reclaim.Counters{DelayNS: 800_020_000, Count: 2, Reclaimed: 64}
	// The throttle where measured (a load measures every cgroup or none:
	// /idle stands for a load that does not).
	a := stat("/pods/a", 20_000, 30_000, 800_000_000)
	a.ObserveThrottle(1_850_000_000)
	pods.ObserveThrottle(1_850_000_000)
	lines := render(t, pods, a, stat("/idle"))
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rows:\n%s", strings.Join(lines, "\n"))
	}
	tests := []struct {
		line int
		want []string
	}{
		{0, []string{"CGROUP", "RECLAIMS", "DELAY", "PAGES", "P99", "MAX", "MEM.MAX", "MEM.HIGH", "PROACTIVE", "DIRECT", "THROT", "FORCED"}},
		// count, total, pages, p99 max (capped by it), max, high, proactive, direct, throttle, forced
		{1, []string{"/pods", "3", "800ms", "96", "800ms", "800ms", "50µs", "0", "800ms", "12ms", "1.9s", "800ms"}},
		{2, []string{"a", "3", "800ms", "96", "800ms", "800ms", "50µs", "0", "800ms", "0", "1.9s", "0"}},
		{3, []string{"/idle", "0", "0", "0", "-", "-", "0", "0", "0", "0", "n/a", "0"}},
	}
	for _, tt := range tests {
		if got := strings.Fields(lines[tt.line]); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("line %d: %q\nwant fields %q", tt.line, lines[tt.line], tt.want)
		}
	}
	// /pods/a is shown under /pods, indented; /idle is not below it.
	if !strings.HasPrefix(lines[2], "  a ") || !strings.HasPrefix(lines[3], "/idle ") {
		t.Errorf("tree indentation:\n%s", strings.Join(lines, "\n"))
	}
	// Numbers are right-aligned: the columns end where the headers end.
	if i, j := strings.Index(lines[0], "RECLAIMS")+len("RECLAIMS"), strings.Index(lines[1], " 3 ")+2; i != j {
		t.Errorf("RECLAIMS ends at %d, its value at %d:\n%s", i, j, strings.Join(lines, "\n"))
	}
}

func TestTableEmpty(t *testing.T) {
	lines := render(t)
	if len(lines) != 1 || !strings.Contains(lines[0], "CGROUP") {
		t.Errorf("empty table: %q, want its header alone", lines)
	}
}

// TestTableWidth renders a realistic Kubernetes node, with systemd's long
// names and numbers as large as a busy day makes them, and holds it to
// MaxWidth columns.
func TestTableWidth(t *testing.T) {
	big := func(path string) reclaim.Stat {
		s := stat(path, 1500, 90_000, 4_000_000, 812_000_000, 67_000_000_000)
		s.Count, s.Reclaimed, s.DelayNS = 12_345_678, 987_654_321, 99_999*1e9
		s.Causes[reclaim.Max].DelayNS = 60_000 * 1e9
		s.Causes[reclaim.High].DelayNS = 20_000 * 1e9
		s.Causes[reclaim.Proactive].DelayNS = 19_999 * 1e9
		s.Causes[reclaim.Direct].DelayNS = 5_000 * 1e9
		s.Forced.DelayNS = 99_999 * 1e9
		s.ObserveThrottle(99_999 * 1e9)
		return s
	}
	root := "/kubepods.slice"
	stats := []reclaim.Stat{big("/"), big(root), big(root + "/kubepods-burstable.slice")}
	for _, pod := range []string{"0c9d1a2e_4b3f_4a4e_9f1e_2b2c7f5d7c1a", "7f0e5c1b_0000_4a4e_9f1e_aaaaaaaaaaaa"} {
		p := root + "/kubepods-burstable.slice/kubepods-burstable-pod" + pod + ".slice"
		stats = append(stats, big(p),
			big(p+"/cri-containerd-4f1c2b3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a.scope"))
	}
	stats = append(stats, big("/system.slice/systemd-journald.service"), big("/user.slice/user-1000.slice/user@1000.service/app.slice"))
	lines := render(t, stats...)
	widest := 0
	for _, l := range lines {
		widest = max(widest, utf8.RuneCountInString(l))
	}
	t.Logf("widest line: %d columns\n%s", widest, strings.Join(lines, "\n"))
	if widest > MaxWidth {
		t.Errorf("widest line has %d columns, more than %d", widest, MaxWidth)
	}
	// Pods and containers go by their short names; elided names keep
	// their ends.
	out := strings.Join(lines, "\n")
	for _, want := range []string{"      pod 0c9d1a2e  ", "      pod 7f0e5c1b  ", "        containerd 4f1c2b3a  ",
		"burstable.slice", "journald.service"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

func TestTreeNames(t *testing.T) {
	var stats []reclaim.Stat
	for _, p := range []string{"/", "/a", "/a/b", "/a/b/c", "/a/bb", "/x/y", "/x/y/z/w", "/a"} {
		stats = append(stats, reclaim.Stat{Path: p})
	}
	want := []string{"/", "  a", "    b", "      c", "    bb", "  x/y", "    z/w", "  a"}
	got := treeNames(snapshotOf(stats).Rows)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("treeNames = %q, want %q", got, want)
	}
	// Without the root, unrelated paths stay whole; a prefix that is not a
	// parent (/ab after /a) is not nested.
	stats = []reclaim.Stat{{Path: "/a"}, {Path: "/ab"}, {Path: "/a"}, {Path: "/a"}}
	if got := treeNames(snapshotOf(stats).Rows); strings.Join(got, "|") != "/a|/ab|/a|/a" {
		t.Errorf("treeNames = %q", got)
	}
}

func TestElide(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want string
	}{
		{"short", 16, "short"},
		{"exactly-sixteen!", 16, "exactly-sixteen!"},
		{"kubepods-burstable-pod0c9d1a2e.slice", 16, "kubep…1a2e.slice"},
		{"    kubepods-burstable-pod0c9d1a2e.slice", 20, "    kubep…1a2e.slice"},
		// watch's narrow terminals: never a panic, never longer than n.
		{"/process_api/18f43c0f2d606e7a", 12, "/pr…2d606e7a"},
		{"      deep", 5, " …eep"},
		{"abc", 1, "…"},
		{"abc", 0, ""},
	}
	for _, tt := range tests {
		got := Elide(tt.name, tt.n)
		if got != tt.want || utf8.RuneCountInString(got) > tt.n {
			t.Errorf("Elide(%q, %d) = %q, want %q", tt.name, tt.n, got, tt.want)
		}
	}
}

func TestLatency(t *testing.T) {
	tests := []struct {
		ns   uint64
		want string
	}{
		{0, "0"}, {1, "1ns"}, {999, "999ns"},
		{1000, "1.0µs"}, {1049, "1.0µs"}, {9949, "9.9µs"}, {9950, "10µs"}, {12_345, "12µs"}, {999_499, "999µs"},
		{999_500, "1.0ms"}, {4_560_000, "4.6ms"}, {812_000_000, "812ms"},
		{999_500_000, "1.0s"}, {1_234_567_890, "1.2s"}, {3600e9, "3600s"}, {99_999e9, "99999s"},
	}
	for _, tt := range tests {
		if got := Latency(tt.ns); got != tt.want {
			t.Errorf("Latency(%d) = %q, want %q", tt.ns, got, tt.want)
		}
		if got := Latency(tt.ns); utf8.RuneCountInString(got) > 6 {
			t.Errorf("Latency(%d) = %q, wider than 6", tt.ns, got)
		}
	}
}

// tenThousand are 10,000 cgroups that all reclaimed: 200 reclaims each
// from 1 µs to 1 s, the worst case for the quantiles and the buckets.
func tenThousand() []reclaim.Stat {
	stats := make([]reclaim.Stat, 10_000)
	for i := range stats {
		stats[i].Path = fmt.Sprintf("/bench/%d/%d", i/100, i)
		for n := uint64(0); n < 200; n++ {
			stats[i].Observe(reclaim.Cause(n%2), 1000<<(n%20)+n*7919, 8, n%3 == 0)
		}
	}
	return stats
}

// BenchmarkJSON10k is read --all --json's formatting of 10,000 cgroups.
func BenchmarkJSON10k(b *testing.B) {
	snap := snapshotOf(tenThousand())
	for b.Loop() {
		if err := JSON(io.Discard, snap); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTable10k is read --all's table of 10,000 cgroups.
func BenchmarkTable10k(b *testing.B) {
	rows := snapshotOf(tenThousand()).Rows
	for b.Loop() {
		if err := Table(io.Discard, rows); err != nil {
			b.Fatal(err)
		}
	}
}
