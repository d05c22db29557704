package format

import (
	"fmt"
	"io"
	"strings"

	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// barWidth is the longest bar, as in bpftrace's histograms.
const barWidth = 52

// Hist draws a cgroup's memory-cgroup reclaim latencies as the text
// histogram of bpftrace and bcc: a line of totals and quantiles, then one
// bar per bucket from the first non-empty bucket to the last, with its
// range and count, then the causes.
func Hist(w io.Writer, s reclaim.Stat) error {
	fmt.Fprintf(w, "%s: memory-cgroup reclaim %s", s.Path, counters(s.Memcg()))
	if s.Count > 0 {
		fmt.Fprintf(w, "; p50 %s, p90 %s, p99 %s, max %s",
			Compact(s.Quantile(0.50)), Compact(s.Quantile(0.90)), Compact(s.Quantile(0.99)), Compact(s.MaxNS))
	}
	fmt.Fprintln(w)
	bars(w, &s.Hist)
	for c := reclaim.Cause(0); c < reclaim.NrCauses; c++ {
		fmt.Fprintf(w, "%-10s %s\n", c.String()+":", counters(s.Causes[c]))
	}
	_, err := fmt.Fprintf(w, "%-10s %s\n", "forced:", counters(s.Forced))
	return err
}

// bars writes one line per bucket between the first and last non-empty
// ones; the fullest bucket gets the longest bar.
func bars(w io.Writer, h *reclaim.Hist) {
	first, last := -1, -1
	var most uint64
	for i, c := range h {
		if c == 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
		most = max(most, c)
	}
	if first < 0 {
		return
	}
	ranges := make([]string, 0, last-first+1)
	width := 0
	for i := first; i <= last; i++ {
		ranges = append(ranges, bucketRange(i))
		width = max(width, len([]rune(ranges[len(ranges)-1])))
	}
	countWidth := len(fmt.Sprint(most))
	for i := first; i <= last; i++ {
		r := ranges[i-first]
		n := int(float64(h[i]) * barWidth / float64(most))
		if h[i] > 0 && n == 0 {
			n = 1 // a bucket that is not empty shows
		}
		fmt.Fprintf(w, "%s%s %*d |%s%s|\n", r, strings.Repeat(" ", width-len([]rune(r))), countWidth, h[i],
			strings.Repeat("@", n), strings.Repeat(" ", barWidth-n))
	}
}

// bucketRange prints bucket i's range, [lo, hi) or [lo, ...) for the last.
func bucketRange(i int) string {
	lo, hi := reclaim.BucketBounds(i)
	if i == reclaim.NrBuckets-1 {
		return fmt.Sprintf("[%s, ...)", Compact(lo))
	}
	return fmt.Sprintf("[%s, %s)", Compact(lo), Compact(hi))
}

func counters(c reclaim.Counters) string {
	noun := "reclaims"
	if c.Count == 1 {
		noun = "reclaim"
	}
	return fmt.Sprintf("%s in %d %s, %s", Compact(c.DelayNS), c.Count, noun, Pages(c.Reclaimed))
}
