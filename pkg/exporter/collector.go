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
	labels = []string{"cgroup"}

	reclaimSeconds = prometheus.NewDesc(namespace+"_reclaim_seconds_total",
		"Time spent in memory-cgroup reclaim (mm_vmscan_memcg_reclaim_begin to _end), summed over reclaims."+hierarchical, labels, nil)
	reclaims = prometheus.NewDesc(namespace+"_reclaims_total",
		"Memory-cgroup reclaims."+hierarchical, labels, nil)
	reclaimedPages = prometheus.NewDesc(namespace+"_reclaimed_pages_total",
		"Pages reclaimed by memory-cgroup reclaim."+hierarchical, labels, nil)

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
	for _, d := range []*prometheus.Desc{reclaimSeconds, reclaims, reclaimedPages, flushMode, mapEntries,
		mapCapacity, lostUpdates, cgroups, exported, scrapeSeconds} {
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
		counter(ch, reclaimSeconds, float64(cg.DelayNS)/1e9, cg.Path)
		counter(ch, reclaims, float64(cg.Count), cg.Path)
		counter(ch, reclaimedPages, float64(cg.Reclaimed), cg.Path)
	}
	gauge(ch, cgroups, float64(len(snap.Cgroups)))
	gauge(ch, exported, float64(n))
	gauge(ch, scrapeSeconds, snap.Took.Seconds())
	health(ch, &snap.Health)
}

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
