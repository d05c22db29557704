package exporter

import (
	"math"

	dto "github.com/prometheus/client_model/go"

	"github.com/cgrstat/cgrstat/pkg/identity"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// scrape collects one snapshot's metrics by family.
type scrape struct {
	fams      map[*family]*dto.MetricFamily
	exemplars map[string]*cgroupExemplars // by cgroup path; nil without any
	ids       identity.Parser             // the rows come parents first
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
	s.counterWith(f, v, labels(f, labelValues...))
}

func (s *scrape) gauge(f *family, v float64, labelValues ...string) {
	s.gaugeWith(f, v, labels(f, labelValues...))
}

// counterWith and gaugeWith take label pairs that several series share:
// the encoder only reads them, and at 10,000 cgroups allocations are most
// of a scrape's cost.
func (s *scrape) counterWith(f *family, v float64, l []*dto.LabelPair) {
	s.add(f, &dto.Metric{Label: l, Counter: &dto.Counter{Value: &v}})
}

func (s *scrape) gaugeWith(f *family, v float64, l []*dto.LabelPair) {
	s.add(f, &dto.Metric{Label: l, Gauge: &dto.Gauge{Value: &v}})
}

var (
	cgroupName = "cgroup"
	causeName  = "cause"
	causeNames [reclaim.NrCauses]string
	causeLabel [reclaim.NrCauses]*dto.LabelPair  // shared by every cgroup's series
	distNames  = [2]string{"limit", "proactive"} // reclaim.Stat.Dists
	distLabel  [2]*dto.LabelPair
)

func init() {
	for i, c := range reclaim.AllCauses {
		causeNames[i] = c.String()
		causeLabel[i] = &dto.LabelPair{Name: &causeName, Value: &causeNames[i]}
	}
	for i := range distNames {
		distLabel[i] = &dto.LabelPair{Name: &causeName, Value: &distNames[i]}
	}
}

// cgroup adds a cgroup's series. Its memory-cgroup reclaim count is always
// there, so that every exported cgroup is visible and increase() sees its
// first reclaim. Every other series (time and pages, the counts by cause,
// the latency histograms, the maximum, forced reclaim) appears with the
// first reclaim of its kind: a host has thousands of cgroups that never
// reclaim, and one series for each instead of dozens (histogram buckets
// included) is what keeps a scrape of 10,000 cgroups as cheap as read
// --all (BENCHMARKS.md). The price: increase() over a series that has
// just appeared misses its first value, such as a cgroup's first direct
// reclaim.
func (s *scrape) cgroup(cg *reclaim.Stat) {
	// A copy of the path: the row is overwritten by the next scrape.
	p := cg.Path
	path := &dto.LabelPair{Name: &cgroupName, Value: &p}
	only := []*dto.LabelPair{path}
	s.counterWith(memcgReclaims, float64(cg.Count), only)
	if cg.Count > 0 {
		s.counterWith(memcgSeconds, seconds(cg.DelayNS), only)
		s.counterWith(memcgPages, float64(cg.Reclaimed), only)
		s.gaugeWith(maxSeconds, seconds(cg.MaxNS), only)
	}
	for i, cause := range reclaim.AllCauses {
		c := cg.Causes[cause]
		if c.Count == 0 {
			continue
		}
		both := []*dto.LabelPair{causeLabel[i], path}
		s.counterWith(reclaims, float64(c.Count), both)
		s.counterWith(reclaimSeconds, seconds(c.DelayNS), both)
		s.counterWith(reclaimedPages, float64(c.Reclaimed), both)
	}
	for i, d := range cg.Dists() {
		if d.Name != distNames[i] {
			panic("exporter: reclaim.Stat.Dists changed: " + d.Name)
		}
		if d.Counters.Count > 0 {
			hist := histogram(d.Hist, d.Counters.DelayNS)
			if ex := s.exemplars[cg.Path]; ex != nil {
				withExemplars(hist, ex[i])
			}
			s.add(duration, &dto.Metric{Label: []*dto.LabelPair{distLabel[i], path}, Histogram: hist})
		}
	}
	if cg.Forced.Count > 0 {
		s.counterWith(forcedSeconds, seconds(cg.Forced.DelayNS), only)
		s.counterWith(forcedReclaims, float64(cg.Forced.Count), only)
	}
	if cg.OOMKills > 0 {
		s.counterWith(oomKills, float64(cg.OOMKills), only)
	}
	if th := &cg.Throttle; th.Measured && th.Count > 0 && th.Hist != nil {
		s.counterWith(throttleSeconds, seconds(th.DelayNS), only)
		s.counterWith(throttles, float64(th.Count), only)
		s.add(throttleDuration, &dto.Metric{Label: only, Histogram: histogram(th.Hist, th.DelayNS)})
	}
	s.kernel(cg, only)
	s.info(cg.Path)
}

// kernel adds the kernel's own figures of the cgroup, each from its first
// non-zero value, like cgrstat's own series.
func (s *scrape) kernel(cg *reclaim.Stat, only []*dto.LabelPair) {
	for _, c := range []struct {
		f  *family
		ok bool
		v  float64
	}{
		{pressureWaiting, cg.Pressure.Read, seconds(cg.Pressure.SomeNS)},
		{pressureStalled, cg.Pressure.Read, seconds(cg.Pressure.FullNS)},
		{eventsHigh, cg.Events.Read && !cg.Events.V1, float64(cg.Events.High)},
		{eventsMax, cg.Events.Read && !cg.Events.V1, float64(cg.Events.Max)},
		{eventsOOM, cg.Events.Read && !cg.Events.V1, float64(cg.Events.OOM)},
		{eventsOOMKill, cg.Events.Read, float64(cg.Events.OOMKill)},
		{failcnt, cg.Events.Read && cg.Events.V1, float64(cg.Events.Failcnt)},
	} {
		if c.ok && c.v > 0 {
			s.counterWith(c.f, c.v, only)
		}
	}
}

// info adds the cgroup's identity as one series of its own, the way
// kube-state-metrics exposes kube_pod_info: users join it where they need
// it, and no other series carries its labels, so their number does not
// change.
func (s *scrape) info(path string) {
	id, ok := s.ids.Parse(path)
	if !ok {
		return
	}
	s.gauge(cgroupInfo, 1, path, id.ContainerRef(), string(id.Kind), id.PodUID, id.QoS, string(id.Runtime), id.Unit, id.User)
}

// histogram is one cause's latency distribution; sumNS is its total time.
func histogram(h *reclaim.Hist, sumNS uint64) *dto.Histogram {
	count, cum := cumulative(h)
	sum := seconds(sumNS)
	out := &dto.Histogram{SampleCount: &count, SampleSum: &sum, Bucket: make([]*dto.Bucket, len(bounds))}
	for j := range bounds {
		out.Bucket[j] = &dto.Bucket{CumulativeCount: &cum[j], UpperBound: &bounds[j]}
	}
	return out
}

// withExemplars attaches a bucket's exemplar to it; an exemplar of +Inf
// gets the bucket the encoders otherwise write themselves, with the same
// count, so that the text format is the same line either way. Only the
// OpenMetrics format carries exemplars.
func withExemplars(h *dto.Histogram, ex []*dto.Exemplar) {
	if ex == nil {
		return
	}
	for j, b := range h.Bucket {
		b.Exemplar = ex[j]
	}
	if e := ex[len(bounds)]; e != nil {
		inf := math.Inf(1)
		h.Bucket = append(h.Bucket, &dto.Bucket{CumulativeCount: h.SampleCount, UpperBound: &inf, Exemplar: e})
	}
}

func seconds(ns uint64) float64 { return float64(ns) / 1e9 }

func (s *scrape) health(h *readout.Health) {
	s.gauge(flushMode, 1, string(h.Flush))
	measured := 0.0
	if h.Throttle {
		measured = 1
	}
	s.gauge(throttleMeasured, measured)
	for _, m := range []struct {
		name string
		fill readout.Fill
	}{{"stats", h.Stats}} {
		s.gauge(mapEntries, float64(m.fill.Entries), m.name)
		s.gauge(mapCapacity, float64(m.fill.MaxEntries), m.name)
	}
	for _, l := range []struct {
		kind string
		n    uint64
	}{{"events", h.Lost.Events}, {"task_storage", h.Lost.TaskStorage}, {"removed_deltas", h.Lost.RemovedDeltas}, {"waited_deltas", h.Lost.WaitedDeltas}, {"rstat_marks", h.Lost.RstatMarks}} {
		s.counter(lostUpdates, float64(l.n), l.kind)
	}
}
