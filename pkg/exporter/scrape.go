package exporter

import (
	"math"

	dto "github.com/prometheus/client_model/go"

	"github.com/cgrstat/cgrstat/pkg/identity"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// sink takes one snapshot's series as scrape finds them, cgroup by
// cgroup (the series of several families interleaved), and builds one
// representation of them: client_golang's metric families (dtoSink) or
// the exposition text itself (textSink). Which series a snapshot has is
// decided once, in scrape.
type sink interface {
	// row starts a cgroup: the series until the next row are its own,
	// with its path as label cgroup.
	row(path string)
	// rowValue is a counter or gauge of the row's cgroup; cause, unless
	// nil, is its cause label, which sorts before cgroup.
	rowValue(f *family, cause *causeLabel, v float64)
	// rowHist is a histogram of the row's cgroup; ex, unless nil, holds
	// an exemplar (or nil) for each bucket, +Inf last.
	rowHist(f *family, cause *causeLabel, h *reclaim.Hist, sumNS uint64, ex []*dto.Exemplar)
	// value is a series with its own labels, valued in f.labels' order.
	value(f *family, v float64, labelValues ...string)
}

// causeLabel is one value of label cause, in each representation.
type causeLabel struct {
	pair *dto.LabelPair
	text string // cause="max",
}

var (
	cgroupName = "cgroup"
	causeName  = "cause"
	causeNames [reclaim.NrCauses]string
	causes     [reclaim.NrCauses]causeLabel      // shared by every cgroup's series
	distNames  = [2]string{"limit", "proactive"} // reclaim.Stat.Dists
	dists      [2]causeLabel
)

func init() {
	label := func(value *string) causeLabel {
		return causeLabel{&dto.LabelPair{Name: &causeName, Value: value}, causeName + `="` + *value + `",`}
	}
	for i, c := range reclaim.AllCauses {
		causeNames[i] = c.String()
		causes[i] = label(&causeNames[i])
	}
	for i := range distNames {
		dists[i] = label(&distNames[i])
	}
}

// scrape finds one snapshot's series and gives them to a sink.
type scrape struct {
	out       sink
	exemplars map[string]*cgroupExemplars // by cgroup path; nil without any
	ids       identity.Parser             // the rows come parents first
}

// rows gives the series of rows' cgroups to the sink.
func (s *scrape) rows(rows []readout.Row) {
	for i := range rows {
		s.cgroup(&rows[i].Stat)
	}
}

// tail gives the rest of snap's series to the sink, after its rows': the
// scrape's own and the load's health; unplaced is the exemplar store's
// count, nil without one.
func (s *scrape) tail(snap *readout.Snapshot, unplaced *uint64) {
	s.out.value(cgroups, float64(snap.Cgroups))
	s.out.value(exported, float64(len(snap.Rows)))
	s.out.value(scrapeSeconds, snap.Took.Seconds())
	s.health(&snap.Health)
	if unplaced != nil {
		s.out.value(exemplarsUnplaced, float64(*unplaced))
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
	out := s.out
	// The one label value from outside (the identity's are parts of it):
	// made UTF-8 here, once, for every sink.
	path := labelValue(cg.Path)
	out.row(path)
	out.rowValue(memcgReclaims, nil, float64(cg.Count))
	if cg.Count > 0 {
		out.rowValue(memcgSeconds, nil, seconds(cg.DelayNS))
		out.rowValue(memcgPages, nil, float64(cg.Reclaimed))
		out.rowValue(maxSeconds, nil, seconds(cg.MaxNS))
	}
	for i, cause := range reclaim.AllCauses {
		c := cg.Causes[cause]
		if c.Count == 0 {
			continue
		}
		out.rowValue(reclaims, &causes[i], float64(c.Count))
		out.rowValue(reclaimSeconds, &causes[i], seconds(c.DelayNS))
		out.rowValue(reclaimedPages, &causes[i], float64(c.Reclaimed))
	}
	for i, d := range cg.Dists() {
		if d.Name != distNames[i] {
			panic("exporter: reclaim.Stat.Dists changed: " + d.Name)
		}
		if d.Counters.Count > 0 {
			var ex []*dto.Exemplar
			if ce := s.exemplars[cg.Path]; ce != nil {
				ex = ce[i]
			}
			out.rowHist(duration, &dists[i], d.Hist, d.Counters.DelayNS, ex)
		}
	}
	if cg.Forced.Count > 0 {
		out.rowValue(forcedSeconds, nil, seconds(cg.Forced.DelayNS))
		out.rowValue(forcedReclaims, nil, float64(cg.Forced.Count))
	}
	if cg.OOMKills > 0 {
		out.rowValue(oomKills, nil, float64(cg.OOMKills))
	}
	if th := &cg.Throttle; th.Measured && th.Count > 0 && th.Hist != nil {
		out.rowValue(throttleSeconds, nil, seconds(th.DelayNS))
		out.rowValue(throttles, nil, float64(th.Count))
		out.rowHist(throttleDuration, nil, th.Hist, th.DelayNS, nil)
	}
	s.kernel(cg)
	s.info(path)
}

// kernel adds the kernel's own figures of the cgroup, each from its first
// non-zero value, like cgrstat's own series.
func (s *scrape) kernel(cg *reclaim.Stat) {
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
			s.out.rowValue(c.f, nil, c.v)
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
	s.out.value(cgroupInfo, 1, path, id.ContainerRef(), string(id.Kind), id.PodUID, id.QoS, string(id.Runtime), id.Unit, id.User)
}

func seconds(ns uint64) float64 { return float64(ns) / 1e9 }

func (s *scrape) health(h *readout.Health) {
	s.out.value(flushMode, 1, string(h.Flush))
	measured := 0.0
	if h.Throttle {
		measured = 1
	}
	s.out.value(throttleMeasured, measured)
	for _, m := range []struct {
		name string
		fill readout.Fill
	}{{"stats", h.Stats}} {
		s.out.value(mapEntries, float64(m.fill.Entries), m.name)
		s.out.value(mapCapacity, float64(m.fill.MaxEntries), m.name)
	}
	for _, l := range []struct {
		kind string
		n    uint64
	}{{"events", h.Lost.Events}, {"task_storage", h.Lost.TaskStorage}, {"removed_deltas", h.Lost.RemovedDeltas}, {"waited_deltas", h.Lost.WaitedDeltas}, {"rstat_marks", h.Lost.RstatMarks}} {
		s.out.value(lostUpdates, float64(l.n), l.kind)
	}
}

// dtoSink builds client_golang's metric families: what a registry
// gathers (Collect), and what serve encodes in the formats it does not
// write itself (protobuf).
type dtoSink struct {
	fams map[*family]*dto.MetricFamily
	// The row's label pairs: the encoders only read them, and at 10,000
	// cgroups allocations are most of this sink's cost.
	path *dto.LabelPair
	only []*dto.LabelPair
}

func newDTOSink() *dtoSink { return &dtoSink{fams: map[*family]*dto.MetricFamily{}} }

func (s *dtoSink) add(f *family, m *dto.Metric) {
	mf := s.fams[f]
	if mf == nil {
		mf = &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: &f.typ}
		s.fams[f] = mf
	}
	mf.Metric = append(mf.Metric, m)
}

// families are the families that have metrics, in declaration order.
func (s *dtoSink) families() []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for _, f := range families {
		if mf := s.fams[f]; mf != nil {
			out = append(out, mf)
		}
	}
	return out
}

func (s *dtoSink) row(path string) {
	// A copy of the path: the row is overwritten by the next scrape.
	p := path
	s.path = &dto.LabelPair{Name: &cgroupName, Value: &p}
	s.only = []*dto.LabelPair{s.path}
}

func (s *dtoSink) rowLabels(cause *causeLabel) []*dto.LabelPair {
	if cause == nil {
		return s.only
	}
	return []*dto.LabelPair{cause.pair, s.path}
}

func (s *dtoSink) rowValue(f *family, cause *causeLabel, v float64) {
	s.add(f, metric(f, v, s.rowLabels(cause)))
}

func (s *dtoSink) rowHist(f *family, cause *causeLabel, h *reclaim.Hist, sumNS uint64, ex []*dto.Exemplar) {
	hist := histogram(h, sumNS)
	withExemplars(hist, ex)
	s.add(f, &dto.Metric{Label: s.rowLabels(cause), Histogram: hist})
}

func (s *dtoSink) value(f *family, v float64, labelValues ...string) {
	l := make([]*dto.LabelPair, len(labelValues))
	for i := range labelValues {
		l[i] = &dto.LabelPair{Name: &f.labels[i], Value: &labelValues[i]}
	}
	s.add(f, metric(f, v, l))
}

// metric is a counter's or a gauge's metric.
func metric(f *family, v float64, l []*dto.LabelPair) *dto.Metric {
	if f.typ == counterType {
		return &dto.Metric{Label: l, Counter: &dto.Counter{Value: &v}}
	}
	return &dto.Metric{Label: l, Gauge: &dto.Gauge{Value: &v}}
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
