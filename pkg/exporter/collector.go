// Package exporter exposes cgrstat's per-cgroup reclaim totals in the
// Prometheus exposition format. Each scrape reads one fresh snapshot (one
// flush, batched map reads) and turns it into metric families, so a cgroup
// that is gone is gone from the next scrape: nothing keeps series alive.
package exporter

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sync"

	"github.com/cgrstat/cgrstat/pkg/readout"
)

// hierarchical is said in every per-cgroup HELP: Prometheus users sum
// series by habit, and a parent already contains its children.
const hierarchical = " Each series is the cgroup's hierarchical total (the cgroup and every descendant): do not sum a parent with its children."

// family is one metric family: what Describe sends, and what a scrape
// fills. Labels are sorted by name, as the exposition wants them.
type family struct {
	name, help string
	typ        dto.MetricType
	labels     []string
	desc       *prometheus.Desc
	index      int       // in families
	header     [2][]byte // HELP and TYPE lines: text format, OpenMetrics (see headers)
}

var families []*family

func newFamily(name, help string, typ dto.MetricType, labels ...string) *family {
	f := &family{name: "cgrstat_" + name, help: help, typ: typ, labels: labels, index: len(families)}
	f.desc = prometheus.NewDesc(f.name, help, labels, nil)
	families = append(families, f)
	return f
}

const (
	counterType   = dto.MetricType_COUNTER
	gaugeType     = dto.MetricType_GAUGE
	histogramType = dto.MetricType_HISTOGRAM
)

var (
	reclaims = newFamily("reclaims_total",
		"Reclaims tasks stalled in, by cause: max (memory-cgroup reclaim at charge time against memory.max, on cgroup v1 the limit), high (reclaim on the way back to user space after a charge went over memory.high), proactive (memory.reclaim), direct (global direct reclaim); from the cause's first reclaim in the cgroup on."+hierarchical,
		counterType, "cause", "cgroup")
	reclaimSeconds = newFamily("reclaim_seconds_total",
		"Time tasks stalled in reclaim, by cause (see cgrstat_reclaims_total); from the cause's first reclaim in the cgroup on."+hierarchical,
		counterType, "cause", "cgroup")
	reclaimedPages = newFamily("reclaimed_pages_total",
		"Pages reclaimed, by cause (see cgrstat_reclaims_total); from the cause's first reclaim in the cgroup on."+hierarchical,
		counterType, "cause", "cgroup")
	memcgSeconds = newFamily("memcg_reclaim_seconds_total",
		"Time tasks stalled in memory-cgroup reclaim (causes max, high and proactive together): the stat file's total_vmscan_delay; from the cgroup's first such reclaim on."+hierarchical,
		counterType, "cgroup")
	memcgReclaims = newFamily("memcg_reclaims_total",
		"Memory-cgroup reclaims (causes max, high and proactive together): the stat file's vmscan_count. Every exported cgroup has this series."+hierarchical,
		counterType, "cgroup")
	memcgPages = newFamily("memcg_reclaimed_pages_total",
		"Pages reclaimed by memory-cgroup reclaim (causes max, high and proactive together): the stat file's nr_reclaimed; from the cgroup's first such reclaim on."+hierarchical,
		counterType, "cgroup")
	forcedSeconds = newFamily("forced_reclaim_seconds_total",
		"Time tasks anywhere stalled in memory-cgroup reclaim whose target (the cgroup whose limit was enforced) is this cgroup or below it; from the first such reclaim on."+hierarchical,
		counterType, "cgroup")
	forcedReclaims = newFamily("forced_reclaims_total",
		"Memory-cgroup reclaims whose target is this cgroup or below it; from the first such reclaim on."+hierarchical,
		counterType, "cgroup")
	duration = newFamily("reclaim_duration_seconds",
		"Latency of memory-cgroup reclaims: cause limit (max and high, which share one distribution) and proactive; direct reclaim has none; from the first such reclaim in the cgroup on."+hierarchical,
		histogramType, "cause", "cgroup")
	oomKills = newFamily("oom_kills_total",
		"Tasks the OOM killer chose in this cgroup or below it, counted from BPF (oom:mark_victim), so on cgroup v1 too; from the first on."+hierarchical,
		counterType, "cgroup")
	pressureWaiting = newFamily("pressure_memory_waiting_seconds_total",
		"memory.pressure some total: time at least one task of the cgroup stalled on memory (reclaim, throttling, refaults), as cadvisor's container_pressure_memory_waiting_seconds_total; the kernel's own, folded every 2 s; cgroup v2; from the first stall on."+hierarchical,
		counterType, "cgroup")
	pressureStalled = newFamily("pressure_memory_stalled_seconds_total",
		"memory.pressure full total: time all non-idle tasks of the cgroup stalled on memory at once, as cadvisor's container_pressure_memory_stalled_seconds_total; cgroup v2; from the first such stall on."+hierarchical,
		counterType, "cgroup")
	eventsHigh = newFamily("memory_events_high_total",
		"memory.events high: times the cgroup went over memory.high and was reclaimed (v2); from the first on."+hierarchical,
		counterType, "cgroup")
	eventsMax = newFamily("memory_events_max_total",
		"memory.events max: times a charge would have taken the cgroup over memory.max (v2); from the first on."+hierarchical,
		counterType, "cgroup")
	eventsOOM = newFamily("memory_events_oom_total",
		"memory.events oom: times the cgroup hit memory.max and reclaim could not make room (v2); from the first on."+hierarchical,
		counterType, "cgroup")
	eventsOOMKill = newFamily("memory_events_oom_kill_total",
		"memory.events oom_kill (v1: memory.oom_control's): tasks of the cgroup the OOM killer chose, as the kernel counts them since the cgroup was made; from the first on."+hierarchical,
		counterType, "cgroup")
	failcnt = newFamily("memory_failcnt_total",
		"memory.failcnt (cgroup v1): charges that hit memory.limit_in_bytes; from the first on.",
		counterType, "cgroup")
	throttleSeconds = newFamily("throttle_seconds_total",
		"Time the cgroup's tasks slept as the kernel's penalty for staying above memory.high after reclaiming (over-high handler calls with 1 ms or more outside reclaim). Only where the kernel lets fentry attach (cgrstat_throttle_measured 1); from the first such sleep on."+hierarchical,
		counterType, "cgroup")
	throttleDuration = newFamily("throttle_duration_seconds",
		"Length of those penalty sleeps after memory.high, in the buckets of cgrstat_reclaim_duration_seconds; where measured, from the cgroup's first sleep on."+hierarchical,
		histogramType, "cgroup")
	throttles = newFamily("throttles_total",
		"Times the cgroup's tasks were put to sleep for staying above memory.high (over-high handler calls with 1 ms or more outside reclaim); where measured, from the first on."+hierarchical,
		counterType, "cgroup")
	throttleMeasured = newFamily("throttle_measured",
		"1 when the throttle after memory.high is measured (fentry/fexit on mem_cgroup_handle_over_high attached), 0 where the kernel refused: then cgrstat_throttle_* series are absent, not zero.",
		gaugeType)
	maxSeconds = newFamily("reclaim_max_seconds",
		"Longest memory-cgroup reclaim since the collectors were loaded; from the cgroup's first such reclaim on."+hierarchical,
		gaugeType, "cgroup")
	cgroupInfo = newFamily("cgroup_info",
		"1 for each exported cgroup whose path tells what it is: kind (kubepods, qos, pod, container, conmon, slice, user, session, unit), pod_uid (as kube_pod_info's uid), qos, container_id (as kube_pod_container_info's: containerd://<id>, cri-o://<id>, docker://<id>; the bare ID where the path does not name the runtime), runtime, the systemd unit and the login user. Join it to other series with * on(instance, cgroup) group_left(pod_uid, container_id) cgrstat_cgroup_info.",
		gaugeType, "cgroup", "container_id", "kind", "pod_uid", "qos", "runtime", "unit", "user")

	flushMode = newFamily("flush_mode_info",
		"How the collectors' pending readings are folded up the tree: fentry or kprobe (rstat) or walk (the reader walks the subtree).",
		gaugeType, "mode")
	mapEntries  = newFamily("map_entries", "Cgroups tracked in a per-cgroup BPF map.", gaugeType, "map")
	mapCapacity = newFamily("map_capacity_entries",
		"How many cgroups a per-cgroup BPF map can track (load --max-cgroups).", gaugeType, "map")
	lostUpdates = newFamily("lost_updates_total",
		"Updates the collectors or the flush could not record, by kind (a full map loses events and removed_deltas; task_storage, the kernel's per-task storage). Non-zero means the totals are low.",
		counterType, "kind")
	exemplarsUnplaced = newFamily("exemplar_events_unplaced_total",
		"Slow reclaims from the event stream that serve could not keep as exemplars: their cgroup was removed before serve could name it (short-lived jobs). Present when serve keeps exemplars; since serve started.",
		counterType)
	cgroups = newFamily("cgroups",
		"Cgroups in the served subtree at this scrape, exported or not (see --depth, --match).", gaugeType)
	exported      = newFamily("exported_cgroups", "Cgroups exported at this scrape.", gaugeType)
	scrapeSeconds = newFamily("scrape_duration_seconds",
		"Time this scrape took to flush the subtree and read the maps.", gaugeType)
)

// Collector turns snapshots into metrics. It is a prometheus.Collector,
// and also a prometheus.Gatherer that builds the families directly: at
// 10,000 cgroups the registry's per-metric checks and sorting cost more
// than the flush and the read (BENCHMARKS.md), and the series here are
// consistent by construction (a test gathers them through a registry too).
// Concurrent scrapes are safe: each reads its own snapshot, one at a time
// (the Source serializes them).
type Collector struct {
	src Reader
	// spare is the rows of the last scrape, for the next one to read into
	// (when src is a RowsReader): nil while a scrape holds them.
	mu        sync.Mutex
	spare     []readout.Row
	spareText []*textSink // the last scrape's, their room kept: nil while one holds them
	exemplars *Exemplars  // nil: none
}

// RowsReader reads snapshots into room for their rows, overwriting it
// (readout.Source.ReadInto).
type RowsReader interface {
	ReadInto(rows []readout.Row) (*readout.Snapshot, error)
}

// Reader reads snapshots: a *readout.Source, whose filter (--depth,
// --match) chose the rows while it read them.
type Reader interface {
	Read() (*readout.Snapshot, error)
}

// New returns a collector of the cgroups src reads.
func New(src Reader) *Collector {
	return &Collector{src: src}
}

// WithExemplars attaches x's exemplars to the latency buckets of every
// scrape (the OpenMetrics format shows them; the text format has none).
func (c *Collector) WithExemplars(x *Exemplars) *Collector {
	c.exemplars = x
	return c
}

// Describe sends every descriptor the collector may emit.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range families {
		ch <- f.desc
	}
}

// Collect reads one snapshot and sends its metrics. A failed read fails the
// scrape (promhttp answers 500), rather than exporting partial numbers.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	mfs, err := c.Gather()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(scrapeSeconds.desc, err)
		return
	}
	byName := map[string]*family{}
	for _, f := range families {
		byName[f.name] = f
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			ch <- written{byName[mf.GetName()].desc, m}
		}
	}
}

// written is a metric already in its exposition form.
type written struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (w written) Desc() *prometheus.Desc { return w.desc }

func (w written) Write(out *dto.Metric) error {
	out.Label, out.Counter, out.Gauge, out.Histogram = w.m.Label, w.m.Counter, w.m.Gauge, w.m.Histogram
	return nil
}

// Gather reads one snapshot and returns its metric families.
func (c *Collector) Gather() ([]*dto.MetricFamily, error) {
	snap, done, err := c.read()
	if err != nil {
		return nil, err
	}
	defer done()
	out := newDTOSink()
	c.walk(snap, out)
	return out.families(), nil
}

// read reads one snapshot; done gives its rows back for the next read
// once nothing points into them.
func (c *Collector) read() (snap *readout.Snapshot, done func(), err error) {
	rr, ok := c.src.(RowsReader)
	if !ok {
		snap, err = c.src.Read()
		return snap, func() {}, err
	}
	// One set of rows serves scrape after scrape; a concurrent scrape
	// finds none spare and reads into new ones.
	c.mu.Lock()
	rows := c.spare
	c.spare = nil
	c.mu.Unlock()
	if snap, err = rr.ReadInto(rows); err != nil {
		return nil, nil, err
	}
	return snap, func() {
		c.mu.Lock()
		c.spare = snap.Rows
		c.mu.Unlock()
	}, nil
}

// textSinks are sinks for a scrape in the text format or OpenMetrics (om),
// one for each part of the rows (see walk), the last scrape's if they are
// free; putTextSinks keeps them for the next.
func (c *Collector) textSinks(om bool) []*textSink {
	c.mu.Lock()
	ss := c.spareText
	c.spareText = nil
	c.mu.Unlock()
	if ss == nil {
		ss = make([]*textSink, textParts)
		for i := range ss {
			ss[i] = newTextSink(om)
		}
	}
	for _, s := range ss {
		s.reset(om)
	}
	return ss
}

func (c *Collector) putTextSinks(ss []*textSink) {
	c.mu.Lock()
	c.spareText = ss
	c.mu.Unlock()
}

// walk gives snap's series, with their exemplars, to outs: the rows split
// between them in order, each part walked by a goroutine of its own, and
// the scrape's own series and the load's health to the last one.
func (c *Collector) walk(snap *readout.Snapshot, outs ...sink) {
	ex := c.exemplars.forScrape(snap)
	var unplaced *uint64
	if c.exemplars != nil {
		n := c.exemplars.Unplaced()
		unplaced = &n
	}
	var wg sync.WaitGroup
	for k, out := range outs {
		s := &scrape{out: out, exemplars: ex}
		rows := snap.Rows[k*len(snap.Rows)/len(outs) : (k+1)*len(snap.Rows)/len(outs)]
		if k < len(outs)-1 {
			wg.Go(func() { s.rows(rows) })
			continue
		}
		s.rows(rows)
		s.tail(snap, unplaced)
	}
	wg.Wait()
}
