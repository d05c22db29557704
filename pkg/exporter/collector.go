// Package exporter exposes cgrstat's per-cgroup reclaim totals in the
// Prometheus exposition format. Each scrape reads one fresh snapshot (one
// flush, batched map reads) and turns it into constant metrics, so a cgroup
// that is gone is gone from the next scrape: nothing keeps series alive.
package exporter

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cgrstat/cgrstat/pkg/monitor"
)

const namespace = "cgrstat"

// hierarchical is said in every per-cgroup HELP: Prometheus users sum
// series by habit, and a parent already contains its children.
const hierarchical = " Each series is the cgroup's hierarchical total (the cgroup and every descendant): do not sum a parent with its children."

var (
	cgroupLabel = []string{"cgroup"}
	causeLabels = []string{"cgroup", "cause"}

	reclaimSeconds = prometheus.NewDesc(namespace+"_reclaim_seconds_total",
		"Time tasks stalled in reclaim, by cause: limit (memory-cgroup reclaim at charge time: memory.max, memory.high, v1 limit), proactive (memory.reclaim), direct (global direct reclaim)."+hierarchical, causeLabels, nil)
	reclaims = prometheus.NewDesc(namespace+"_reclaims_total",
		"Reclaims tasks stalled in, by cause (see cgrstat_reclaim_seconds_total)."+hierarchical, causeLabels, nil)
	reclaimedPages = prometheus.NewDesc(namespace+"_reclaimed_pages_total",
		"Pages reclaimed, by cause (see cgrstat_reclaim_seconds_total)."+hierarchical, causeLabels, nil)
	forcedSeconds = prometheus.NewDesc(namespace+"_forced_reclaim_seconds_total",
		"Time tasks anywhere stalled in memory-cgroup reclaim whose target (the cgroup whose limit was enforced) is this cgroup or below it."+hierarchical, cgroupLabel, nil)
	forcedReclaims = prometheus.NewDesc(namespace+"_forced_reclaims_total",
		"Memory-cgroup reclaims whose target is this cgroup or below it."+hierarchical, cgroupLabel, nil)
	duration = prometheus.NewDesc(namespace+"_reclaim_duration_seconds",
		"Latency of memory-cgroup reclaims (causes limit and proactive)."+hierarchical, cgroupLabel, nil)
	maxSeconds = prometheus.NewDesc(namespace+"_reclaim_max_seconds",
		"Longest memory-cgroup reclaim since the collectors were loaded."+hierarchical, cgroupLabel, nil)

	flushMode = prometheus.NewDesc(namespace+"_flush_mode_info",
		"How the collectors' per-CPU readings are folded up the tree: fentry or kprobe (rstat) or walk (the reader walks the subtree).", []string{"mode"}, nil)
	mapEntries = prometheus.NewDesc(namespace+"_map_entries",
		"Cgroups tracked in a per-cgroup BPF map.", []string{"map"}, nil)
	mapCapacity = prometheus.NewDesc(namespace+"_map_capacity_entries",
		"How many cgroups a per-cgroup BPF map can track (load --max-cgroups).", []string{"map"}, nil)
	lostUpdates = prometheus.NewDesc(namespace+"_lost_updates_total",
		"Updates the collectors or the flush could not record, by kind (a full map loses them). Non-zero means the totals are low.", []string{"kind"}, nil)
	cgroups = prometheus.NewDesc(namespace+"_cgroups",
		"Cgroups in the served subtree at this scrape, exported or not (see --depth, --match).", nil, nil)
	exported = prometheus.NewDesc(namespace+"_exported_cgroups",
		"Cgroups exported at this scrape.", nil, nil)
	scrapeSeconds = prometheus.NewDesc(namespace+"_scrape_duration_seconds",
		"Time this scrape took to flush the subtree and read the maps.", nil, nil)
)

// Collector is a prometheus.Collector over a monitor.Source. Concurrent
// scrapes are safe: each reads its own snapshot, one at a time (the Source
// serializes them).
type Collector struct {
	src    *monitor.Source
	filter monitor.Filter
}

// New returns a collector of the cgroups of src that pass filter.
func New(src *monitor.Source, filter monitor.Filter) *Collector {
	return &Collector{src: src, filter: filter}
}

// Describe sends every descriptor the collector may emit.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{reclaimSeconds, reclaims, reclaimedPages, forcedSeconds, forcedReclaims,
		duration, maxSeconds, flushMode, mapEntries, mapCapacity, lostUpdates, cgroups, exported, scrapeSeconds} {
		ch <- d
	}
}

// Collect reads one snapshot and sends its metrics. A failed read fails the
// scrape (promhttp answers 500), rather than exporting partial numbers.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	snap, err := c.src.Read()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(scrapeSeconds, err)
		return
	}
	n := 0
	for i := range snap.Cgroups {
		cg := &snap.Cgroups[i]
		if !c.filter.Keep(cg) {
			continue
		}
		n++
		perCgroup(ch, cg)
	}
	gauge(ch, cgroups, float64(len(snap.Cgroups)))
	gauge(ch, exported, float64(n))
	gauge(ch, scrapeSeconds, snap.Took.Seconds())
	health(ch, &snap.Health)
}

func perCgroup(ch chan<- prometheus.Metric, cg *monitor.Cgroup) {
	for _, cause := range monitor.Causes {
		c := cg.Causes[cause]
		counter(ch, reclaimSeconds, seconds(c.DelayNS), cg.Path, cause.String())
		counter(ch, reclaims, float64(c.Count), cg.Path, cause.String())
		counter(ch, reclaimedPages, float64(c.Reclaimed), cg.Path, cause.String())
	}
	counter(ch, forcedSeconds, seconds(cg.Forced.DelayNS), cg.Path)
	counter(ch, forcedReclaims, float64(cg.Forced.Count), cg.Path)
	gauge(ch, maxSeconds, seconds(cg.MaxNS), cg.Path)
	count, buckets := cumulative(&cg.Hist)
	ch <- prometheus.MustNewConstHistogram(duration, count, seconds(cg.DelayNS), buckets, cg.Path)
}

func seconds(ns uint64) float64 { return float64(ns) / 1e9 }

func health(ch chan<- prometheus.Metric, h *monitor.Health) {
	gauge(ch, flushMode, 1, string(h.Flush))
	for name, f := range map[string]struct {
		entries  int
		capacity uint32
	}{"totals": {h.Totals.Entries, h.Totals.MaxEntries}, "pcpu_stats": {h.Pcpu.Entries, h.Pcpu.MaxEntries}} {
		gauge(ch, mapEntries, float64(f.entries), name)
		gauge(ch, mapCapacity, float64(f.capacity), name)
	}
	for kind, v := range map[string]uint64{"events": h.Lost.Events, "flushes": h.Lost.Flushes,
		"parent_deltas": h.Lost.ParentDeltas, "rstat_marks": h.Lost.RstatMarks} {
		counter(ch, lostUpdates, float64(v), kind)
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}
