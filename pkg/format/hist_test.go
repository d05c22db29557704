package format

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

func TestHist(t *testing.T) {
	s := stat("/pods/a", 1100, 1300, 1300, 1300, 1900, 2100, 2100, 5_000_000)
	s.Causes[reclaim.Direct] = reclaim.Counters{DelayNS: 3_000_000, Count: 2, Reclaimed: 64}
	s.Forced = reclaim.Counters{DelayNS: 1100, Count: 1, Reclaimed: 32}
	var buf bytes.Buffer
	if err := Hist(&buf, s); err != nil {
		t.Fatal(err)
	}
	want := `/pods/a: memory-cgroup reclaim 5.0ms in 8 reclaims, 256 pages; p50 1.5µs, p90 4.4ms, p99 5.0ms, max 5.0ms
[1.0µs, 1.3µs) 1 |@@@@@@@@@@@@@@@@@                                   |
[1.3µs, 1.5µs) 3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[1.5µs, 1.8µs) 0 |                                                    |
[1.8µs, 2.0µs) 1 |@@@@@@@@@@@@@@@@@                                   |
[2.0µs, 2.6µs) 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |
[2.6µs, 4.2ms) 0 |                                                    | 43 buckets
[4.2ms, 5.2ms) 1 |@@@@@@@@@@@@@@@@@                                   |
limit:     5.0ms in 6 reclaims, 192 pages; p50 1.5µs, p99 5.0ms
max:       5.0ms in 6 reclaims, 192 pages
high:      0 in 0 reclaims, 0 pages
proactive: 3.4µs in 2 reclaims, 64 pages; p50 1.5µs, p99 2.5µs
direct:    3.0ms in 2 reclaims, 64 pages
forced:    1.1µs in 1 reclaim, 32 pages
throttle:  unavailable (the kernel refused fentry/fexit)
`
	if got := buf.String(); got != want {
		t.Errorf("Hist wrote\n%s\nwant\n%s", got, want)
	}
	buf.Reset()
	s.Throttle = reclaim.Throttle{Measured: true}
	if err := Hist(&buf, s); err != nil || !strings.HasSuffix(buf.String(), "\nthrottle:  0 in 0 sleeps\n") {
		t.Errorf("Hist with no throttle measured wrote\n%s", buf.String())
	}
	buf.Reset()
	s.ObserveThrottle(12_000_000)
	s.ObserveThrottle(300_000_000)
	s.ObserveThrottle(310_000_000)
	want = `throttle:  622ms in 3 sleeps; p50 285ms, p99 335ms
[10ms, 13ms)   1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
[13ms, 268ms)  0 |                                                    | 18 buckets
[268ms, 336ms) 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
`
	if err := Hist(&buf, s); err != nil || !strings.HasSuffix(buf.String(), "\n"+want) {
		t.Errorf("Hist with a throttle wrote\n%s\nwant it to end\n%s", buf.String(), want)
	}
}

func TestHistLabelsDistinct(t *testing.T) {
	// Compact labels lose digits; two buckets must still never look alike.
	label := func(i int) string {
		lo, hi := bucketRange(i)
		return "[" + lo + ", " + hi + ")"
	}
	seen := map[string]int{}
	for i := 0; i < reclaim.NrBuckets; i++ {
		r := label(i)
		if j, ok := seen[r]; ok {
			t.Errorf("buckets %d and %d are both %s", j, i, r)
		}
		seen[r] = i
	}
	if r := label(reclaim.NrBuckets - 1); r != "[69s, ...)" {
		t.Errorf("open bucket: %s", r)
	}
	if r := label(0); r != "[0, 1.0µs)" {
		t.Errorf("first bucket: %s", r)
	}
}

func TestHistEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := Hist(&buf, reclaim.Stat{Path: "/idle"}); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); strings.Contains(out, "|") || !strings.HasPrefix(out, "/idle: memory-cgroup reclaim 0 in 0 reclaims, 0 pages\nlimit:") {
		t.Errorf("empty:\n%s", out)
	}
}

func TestBarLines(t *testing.T) {
	var h reclaim.Hist
	for i, c := range map[int]uint64{10: 2, 14: 5, 19: 1, 105: 3} { // 3 empty, 4 empty, 85 empty
		h[i] = c
	}
	lines, most := barLines(&h)
	want := []bar{{10, 10, 2}, {11, 11, 0}, {12, 12, 0}, {13, 13, 0}, {14, 14, 5}, {15, 18, 0}, {19, 19, 1}, {20, 104, 0}, {105, 105, 3}}
	if fmt.Sprint(lines) != fmt.Sprint(want) || most != 5 {
		t.Errorf("barLines = %v, %d; want %v, 5", lines, most, want)
	}
	if lines, most := barLines(&reclaim.Hist{}); len(lines) != 0 || most != 0 {
		t.Errorf("empty: %v, %d", lines, most)
	}
}
