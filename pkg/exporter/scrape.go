package exporter

import (
	dto "github.com/prometheus/client_model/go"

	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/monitor"
)

// scrape collects one snapshot's metrics by family.
type scrape struct {
	fams map[*family]*dto.MetricFamily
}

func newScrape() *scrape { return &scrape{fams: map[*family]*dto.MetricFamily{}} }

func (s *scrape) add(f *family, m *dto.Metric) {
	mf := s.fams[f]
	if mf == nil {
		mf = &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: &f.typ}
		s.fams[f] = mf
	}
	mf.Metric = append(mf.Metric, m)
}

// families are the families that have metrics, in declaration order.
func (s *scrape) families() []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for _, f := range families {
		if mf := s.fams[f]; mf != nil {
			out = append(out, mf)
		}
	}
	return out
}

// labels pairs names with values; names are sorted already.
func labels(f *family, values ...string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, len(values))
	for i := range values {
		out[i] = &dto.LabelPair{Name: &f.labels[i], Value: &values[i]}
	}
	return out
}

func (s *scrape) counter(f *family, v float64, labelValues ...string) {
	s.add(f, &dto.Metric{Label: labels(f, labelValues...), Counter: &dto.Counter{Value: &v}})
}

func (s *scrape) gauge(f *family, v float64, labelValues ...string) {
	s.add(f, &dto.Metric{Label: labels(f, labelValues...), Gauge: &dto.Gauge{Value: &v}})
}

// cgroup adds a cgroup's series. Its reclaim counts by cause are always
// there, so that every exported cgroup is visible and increase() sees its
// first reclaim. The series that only describe reclaims (their time,
// pages, latency histogram, maximum; forced reclaim) appear with the first
// reclaim of their kind: a host has thousands of cgroups that never
// reclaim, and 3 series for each instead of 29 is what keeps a scrape of
// 10,000 cgroups cheap (BENCHMARKS.md). Nothing is lost: those series
// would all be 0.
func (s *scrape) cgroup(cg *monitor.Cgroup) {
	for _, cause := range monitor.Causes {
		c := cg.Causes[cause]
		name := cause.String()
		s.counter(reclaims, float64(c.Count), name, cg.Path)
		if c.Count > 0 {
			s.counter(reclaimSeconds, seconds(c.DelayNS), name, cg.Path)
			s.counter(reclaimedPages, float64(c.Reclaimed), name, cg.Path)
		}
	}
	if cg.Forced.Count > 0 {
		s.counter(forcedSeconds, seconds(cg.Forced.DelayNS), cg.Path)
		s.counter(forcedReclaims, float64(cg.Forced.Count), cg.Path)
	}
	if cg.Count > 0 {
		s.gauge(maxSeconds, seconds(cg.MaxNS), cg.Path)
		s.add(duration, &dto.Metric{Label: labels(duration, cg.Path), Histogram: histogram(cg)})
	}
}

func histogram(cg *monitor.Cgroup) *dto.Histogram {
	count, cum := cumulative(&cg.Hist)
	sum := seconds(cg.DelayNS)
	h := &dto.Histogram{SampleCount: &count, SampleSum: &sum, Bucket: make([]*dto.Bucket, len(bounds))}
	for j := range bounds {
		h.Bucket[j] = &dto.Bucket{CumulativeCount: &cum[j], UpperBound: &bounds[j]}
	}
	return h
}

func seconds(ns uint64) float64 { return float64(ns) / 1e9 }

func (s *scrape) health(h *monitor.Health) {
	s.gauge(flushMode, 1, string(h.Flush))
	for _, m := range []struct {
		name string
		fill loader.Fill
	}{{"totals", h.Totals}, {"pcpu_stats", h.Pcpu}} {
		s.gauge(mapEntries, float64(m.fill.Entries), m.name)
		s.gauge(mapCapacity, float64(m.fill.MaxEntries), m.name)
	}
	for _, l := range []struct {
		kind string
		n    uint64
	}{{"events", h.Lost.Events}, {"flushes", h.Lost.Flushes}, {"parent_deltas", h.Lost.ParentDeltas}, {"rstat_marks", h.Lost.RstatMarks}} {
		s.counter(lostUpdates, float64(l.n), l.kind)
	}
}
