package exporter

import (
	"math"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

func TestBoundsAreKernelBucketEdges(t *testing.T) {
	if len(bounds) != 14 {
		t.Fatalf("%d bounds, want 14 (4^k µs-ish from 2^10 to 2^36 ns): %v", len(bounds), bounds)
	}
	for j, le := range bounds {
		want := math.Ldexp(1, 10+2*j) / 1e9
		if le != want {
			t.Errorf("bound %d = %g s, want 2^%d ns = %g s", j, le, 10+2*j, want)
		}
	}
}

// TestCumulative checks against the definition: a bucket counts toward le
// when all of it lies at or below le.
func TestCumulative(t *testing.T) {
	var h reclaim.Hist
	for i := range h {
		h[i] = uint64(i*7%13 + 1)
	}
	count, got := cumulative(&h)
	if count != h.Total() {
		t.Errorf("count %d, want %d", count, h.Total())
	}
	for j, le := range bounds {
		var want uint64
		for i := range h {
			if _, hi := reclaim.BucketBounds(i); float64(hi)/1e9 <= le {
				want += h[i]
			}
		}
		if got[j] != want {
			t.Errorf("le=%g: %d, want %d", le, got[j], want)
		}
	}
	var empty reclaim.Hist
	if n, b := cumulative(&empty); n != 0 || len(b) != len(bounds) {
		t.Errorf("empty histogram: count %d, %d buckets", n, len(b))
	}
}
