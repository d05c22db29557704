package main

import (
	"sort"
	"time"

	"github.com/cgrstat/cgrstat/pkg/loader"
)

// Result is everything measured on one kernel. Times are nanoseconds.
type Result struct {
	Machine       string           `json:"machine"` // "host" or the Debian suite
	Kernel        string           `json:"kernel"`
	CgroupVersion int              `json:"cgroup_version"`
	CPUs          int              `json:"possible_cpus"`
	MemTotalMiB   int64            `json:"mem_total_mib"`
	Modes         []loader.Mode    `json:"modes"`
	Refused       []loader.Refusal `json:"refused,omitempty"`
	Trees         []TreeInfo       `json:"trees"`
	Collectors    []Collectors     `json:"collectors"`
	Reads         []Read           `json:"reads"`
	Whole         []Whole          `json:"whole"`
	Scrapes       []Scrape         `json:"scrapes"`
	Footprint     *Footprint       `json:"footprint,omitempty"`
	WalkScale     []WalkScale      `json:"walk_scale,omitempty"`
	Seconds       float64          `json:"seconds"`
	Error         string           `json:"error,omitempty"`
}

// TreeInfo is what building one tree took.
type TreeInfo struct {
	N            int     `json:"n"`
	BuildSeconds float64 `json:"build_seconds"`
	// MemMiB is how much MemAvailable dropped while it was built.
	MemMiB int64 `json:"mem_mib"`
}

// Cost is a program's run-time statistics over one phase.
type Cost struct {
	Runs uint64 `json:"runs"`
	NS   uint64 `json:"run_time_ns"`
}

// PerRun is the mean cost of one run.
func (c Cost) PerRun() float64 {
	if c.Runs == 0 {
		return 0
	}
	return float64(c.NS) / float64(c.Runs)
}

// Pair is a begin and an end collector.
type Pair struct {
	Begin Cost `json:"begin"`
	End   Cost `json:"end"`
}

// PerEvent is what one reclaim costs: one begin plus one end.
func (p Pair) PerEvent() float64 { return p.Begin.PerRun() + p.End.PerRun() }

// Collectors compares cgrstat's collectors with the seed-style baseline and
// with empty programs, each attached alone to the same workload in turn.
type Collectors struct {
	Mode     loader.Mode `json:"mode"`
	Cgrstat  Pair        `json:"cgrstat"`
	Baseline Pair        `json:"baseline"`
	Floor    Pair        `json:"floor"`
	// Plain is each set (cgrstat, baseline, floor) measured as the issue
	// measured it by hand: attached alone, its statistics from the attach
	// over plainEvents events of the plain workload, nothing left out, in each
	// turn. Each figure above must agree with it within 20% (VsPlain).
	Plain   map[string]Pair    `json:"plain"`
	VsPlain map[string]float64 `json:"vs_plain"`
	// AsLoaded is cgrstat's plain measurement: its collectors as its own
	// load attached them, nothing else on the tracepoints.
	AsLoaded Pair `json:"cgrstat_as_loaded"`
	// Traced is cgrstat as loaded while a reader of the event stream
	// subscribes at trace's default threshold (TraceMin): what a running
	// cgrstat trace costs the collectors.
	Traced Pair `json:"cgrstat_traced"`
	// Contended is each set on the stress workload instead: two children
	// at once in different leaves, each filling and syncing 8 MiB of page
	// cache between its bursts of a few events (cold caches, both CPUs
	// reclaiming).
	Contended map[string]Pair `json:"contended"`
	// Turns: each set's measurements; the pairs above are their sums.
	Turns []Turn `json:"turns"`
	// Ratios of PerEvent.
	VsBaseline float64 `json:"cgrstat_vs_baseline"`
	VsFloor    float64 `json:"cgrstat_vs_floor"`
	// TracedVsBaseline is Traced against the baseline attached alone.
	TracedVsBaseline float64 `json:"traced_vs_baseline"`
}

// Read is the cost of reading the top's stat file in one mode at one size.
type Read struct {
	Mode loader.Mode `json:"mode"`
	N    int         `json:"n"`
	// AfterReclaim: the first read after reclaim in 4 leaves, which flushes
	// their updates; Idle: reads with nothing new to flush.
	AfterReclaimNS []int64 `json:"after_reclaim_ns"`
	IdleNS         []int64 `json:"idle_ns"`
	// Flush is the flush program (flush_fentry/flush_kprobe): one run per
	// (cgroup, CPU) pair rstat flushed, whoever asked for the flush.
	Flush *Cost `json:"flush,omitempty"`
	// Dump is the stat file's iterator program over every timed read; in
	// walk mode it is the flush.
	Dump  Cost `json:"dump"`
	Reads int  `json:"reads"`
	// Visited is how many cgroups one read's iterator visits.
	Visited int `json:"visited_per_read"`
}

// Whole compares `cgrstat read --all --json` of the tree with reading
// memory.stat of each of its cgroups.
type Whole struct {
	Mode loader.Mode `json:"mode"`
	N    int         `json:"n"`
	// CLI runs the real binary as a subprocess; InProcess calls
	// readout's Handle.Read and format.JSON; Walk reads every memory.stat.
	CLINS       []int64 `json:"cli_ns"`
	InProcessNS []int64 `json:"in_process_ns"`
	WalkNS      []int64 `json:"memory_stat_walk_ns"`
	MaxRSSKiB   int64   `json:"cli_max_rss_kib"`
	// ReadOneNS is `cgrstat read LEAF` of one stressed leaf, a process.
	ReadOneNS []int64 `json:"read_one_ns"`
	// WalkMemlock is the tree walk's chunks (tree_chunks, allocated by the
	// walks, not at load) after the reads: the kernel's memlock.
	WalkMemlock uint64 `json:"walk_memlock"`
}

// Footprint is the BPF map memory cgrstat keeps per tracked cgroup.
type Footprint struct {
	MaxCgroups uint32      `json:"max_cgroups"`
	Maps       []MapMemory `json:"maps"`
	// PerCgroupMemlock: the kernel's memlock of the per-cgroup maps over
	// max_entries; PerCgroupValues: key and value bytes times possible CPUs.
	PerCgroupMemlock float64 `json:"bytes_per_cgroup_memlock"`
	PerCgroupValues  float64 `json:"bytes_per_cgroup_values"`
}

// MapMemory is one map's size as the kernel reports it.
type MapMemory struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	KeySize    uint32 `json:"key_size"`
	ValueSize  uint32 `json:"value_size"`
	MaxEntries uint32 `json:"max_entries"`
	Memlock    uint64 `json:"memlock"`
}

// median of a sample; 0 when empty.
func median(ns []int64) int64 {
	if len(ns) == 0 {
		return 0
	}
	s := append([]int64(nil), ns...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func since(t time.Time) int64 { return time.Since(t).Nanoseconds() }
