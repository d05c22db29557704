package format

import (
	"bytes"
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
	got := strings.Split(buf.String(), "\n")
	want := strings.Split(`/pods/a: memory-cgroup reclaim 5.0ms in 8 reclaims, 256 pages; p50 1.5µs, p90 4.4ms, p99 5.0ms, max 5.0ms
[1.0µs, 1.3µs) 1 |@@@@@@@@@@@@@@@@@                                   |
[1.3µs, 1.5µs) 3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[1.5µs, 1.8µs) 0 |                                                    |
[1.8µs, 2.0µs) 1 |@@@@@@@@@@@@@@@@@                                   |
[2.0µs, 2.6µs) 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |
`, "\n")
	if len(got) < len(want) {
		t.Fatalf("Hist wrote\n%s", buf.String())
	}
	for i, w := range want[:len(want)-1] {
		if got[i] != w {
			t.Errorf("line %d:\n%q\nwant\n%q", i, got[i], w)
		}
	}
	out := buf.String()
	// The bars run on, empty, to the last non-empty bucket, and no further.
	if !strings.Contains(out, "[4.1µs, 5.1µs) 0 |") || !strings.Contains(out, "[4.2ms, 5.2ms) 1 |@@@@@@@@@@@@@@@@@ ") ||
		strings.Contains(out, "[5.2ms, ") {
		t.Errorf("bars:\n%s", out)
	}
	if !strings.HasSuffix(out, "|\n"+
		"limit:     5.0ms in 6 reclaims, 192 pages\n"+
		"proactive: 3.4µs in 2 reclaims, 64 pages\n"+
		"direct:    3.0ms in 2 reclaims, 64 pages\n"+
		"forced:    1.1µs in 1 reclaim, 32 pages\n") {
		t.Errorf("causes:\n%s", out)
	}
}

func TestHistLabelsDistinct(t *testing.T) {
	// Compact labels lose digits; two buckets must still never look alike.
	seen := map[string]int{}
	for i := 0; i < reclaim.NrBuckets; i++ {
		r := bucketRange(i)
		if j, ok := seen[r]; ok {
			t.Errorf("buckets %d and %d are both %s", j, i, r)
		}
		seen[r] = i
	}
	if r := bucketRange(reclaim.NrBuckets - 1); r != "[69s, ...)" {
		t.Errorf("open bucket: %s", r)
	}
	if r := bucketRange(0); r != "[0, 1.0µs)" {
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
