package format

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// barWidth is the longest bar, as in bpftrace's histograms.
const barWidth = 52

// Hist draws a cgroup's memory-cgroup reclaim latencies as the text
// histogram of bpftrace and bcc: a line of totals and quantiles, then one
// bar per bucket from the first non-empty bucket to the last, with its
// range and count, then the causes, with their own quantiles where they
// have a distribution: proactive reclaim stalls the agent that writes
// memory.reclaim, limit reclaim the workload, so their tails differ. Max
// and high share limit's distribution (reclaim.Stat.LimitHist). Last the
// throttle after memory.high, with its own bars: those are sleeps, not
// reclaims.
func Hist(w io.Writer, s reclaim.Stat) error {
	fmt.Fprintf(w, "%s: memory-cgroup reclaim %s", escape.String(s.Path), counters(s.Memcg()))
	if s.Count > 0 {
		q := s.Quantiles()
		fmt.Fprintf(w, "; p50 %s, p90 %s, p99 %s, max %s", Latency(q[0]), Latency(q[1]), Latency(q[2]), Latency(s.MaxNS))
	}
	fmt.Fprintln(w)
	h := s.Hist()
	bars(w, &h)
	d := s.Dists()
	fmt.Fprintf(w, "%-10s %s%s\n", "limit:", counters(d[0].Counters), quantiles(d[0].Hist, s.MaxNS))
	for c := reclaim.Cause(0); c < reclaim.NrCauses; c++ {
		var h *reclaim.Hist
		if c == reclaim.Proactive {
			h = d[1].Hist
		}
		fmt.Fprintf(w, "%-10s %s%s\n", c.String()+":", counters(s.Causes[c]), quantiles(h, s.MaxNS))
	}
	fmt.Fprintf(w, "%-10s %s\n", "forced:", counters(s.Forced))
	throttle := "unavailable (the kernel refused fentry/fexit)"
	if s.Throttle.Measured {
		// No maximum is kept for the throttle: the quantiles are the buckets'.
		throttle = fmt.Sprintf("%s in %d sleeps%s", Latency(s.Throttle.DelayNS), s.Throttle.Count, quantiles(s.Throttle.Hist, ^uint64(0)))
	}
	_, err := fmt.Fprintf(w, "%-10s %s\n", "throttle:", throttle)
	if s.Throttle.Hist != nil {
		bars(w, s.Throttle.Hist)
	}
	return err
}

// collapseAt is the shortest run of empty buckets that bars writes as one
// line: an octave. A 1 s outlier above 50 µs reclaims would otherwise
// draw 60 empty bars.
const collapseAt = 4

// bar is one line of a histogram: buckets from..to (inclusive), count.
type bar struct {
	from, to int
	count    uint64
}

// bars writes one line per bucket between the first and last non-empty
// ones, except that a run of collapseAt or more empty buckets is one line
// with the run's range, marked with the number of buckets. The fullest
// bucket gets the longest bar.
func bars(w io.Writer, h *reclaim.Hist) {
	lines, most := barLines(h)
	labels := make([]string, len(lines))
	width, countWidth := 0, len(fmt.Sprint(most))
	for i, l := range lines {
		lo, _ := bucketRange(l.from)
		_, hi := bucketRange(l.to)
		labels[i] = "[" + lo + ", " + hi + ")"
		width = max(width, utf8.RuneCountInString(labels[i]))
	}
	for i, l := range lines {
		n := int(float64(l.count) * barWidth / float64(most))
		if l.count > 0 && n == 0 {
			n = 1 // a bucket that is not empty shows
		}
		note := ""
		if l.to > l.from {
			note = fmt.Sprintf(" %d buckets", l.to-l.from+1)
		}
		fmt.Fprintf(w, "%-*s %*d |%s%s|%s\n", width, labels[i], countWidth, l.count,
			strings.Repeat("@", n), strings.Repeat(" ", barWidth-n), note)
	}
}

// barLines splits h between its first and last non-empty buckets into
// lines, and returns the largest count.
func barLines(h *reclaim.Hist) ([]bar, uint64) {
	var lines []bar
	var most uint64
	empty := 0 // empty buckets since the last non-empty one
	for i, c := range h {
		if c == 0 {
			empty++
			continue
		}
		if len(lines) > 0 && empty >= collapseAt {
			lines = append(lines, bar{i - empty, i - 1, 0})
		} else if len(lines) > 0 {
			for j := i - empty; j < i; j++ {
				lines = append(lines, bar{j, j, 0})
			}
		}
		lines = append(lines, bar{i, i, c})
		most = max(most, c)
		empty = 0
	}
	return lines, most
}

// bucketRange prints bucket i's bounds, with "..." as the last's upper.
func bucketRange(i int) (lo, hi string) {
	l, h := reclaim.BucketBounds(i)
	if i == reclaim.NrBuckets-1 {
		return Latency(l), "..."
	}
	return Latency(l), Latency(h)
}

// quantiles are a cause's p50 and p99, capped by the maximum of all.
func quantiles(h *reclaim.Hist, maxNS uint64) string {
	if h == nil || h.Total() == 0 {
		return ""
	}
	return fmt.Sprintf("; p50 %s, p99 %s", Latency(min(h.Quantile(0.5), maxNS)), Latency(min(h.Quantile(0.99), maxNS)))
}

func counters(c reclaim.Counters) string {
	noun := "reclaims"
	if c.Count == 1 {
		noun = "reclaim"
	}
	return fmt.Sprintf("%s in %d %s, %s", Latency(c.DelayNS), c.Count, noun, Pages(c.Reclaimed))
}
