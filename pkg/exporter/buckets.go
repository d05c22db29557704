package exporter

import (
	"math/bits"

	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// The kernel side keeps 106 quarter-octave buckets per cgroup; exporting
// them all would make every cgroup 108 series. Every second power of two
// from 1.02 µs to 68.7 s (1 µs, 4 µs, 16 µs, ... 17 s, 69 s) is a bucket
// boundary of that layout, so the cumulative counts at those bounds are
// exact, not interpolated: 14 series per cgroup plus +Inf.
//
// A kernel bucket is [lo, hi): a reclaim of exactly lo ns is counted above
// the bound lo, where Prometheus' le would put it at or below. The two
// differ only for a latency of that exact nanosecond.
var bounds, boundBucket = exportedBounds()

func exportedBounds() (secs []float64, firstAbove []int) {
	for i := 1; i < reclaim.NrBuckets; i++ {
		lo, _ := reclaim.BucketBounds(i)
		if lo&(lo-1) == 0 && bits.TrailingZeros64(lo)%2 == 0 { // an even power of two
			secs = append(secs, float64(lo)/1e9)
			firstAbove = append(firstAbove, i)
		}
	}
	return secs, firstAbove
}

// cumulative turns a histogram into Prometheus' cumulative buckets, one
// per bound.
func cumulative(h *reclaim.Hist) (count uint64, buckets []uint64) {
	buckets = make([]uint64, len(bounds))
	return cumulativeTo(h, buckets), buckets
}

// cumulativeTo is cumulative into buckets, which has room for len(bounds).
func cumulativeTo(h *reclaim.Hist, buckets []uint64) (count uint64) {
	next := 0
	for j := range bounds {
		for ; next < boundBucket[j]; next++ {
			count += h[next]
		}
		buckets[j] = count
	}
	for ; next < reclaim.NrBuckets; next++ {
		count += h[next]
	}
	return count
}
