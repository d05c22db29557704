package readout

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// Fill is how full the per-cgroup map is.
type Fill struct {
	Entries    int    `json:"entries"`
	MaxEntries uint32 `json:"max_entries"`
}

// Lost counts what the collectors or the flush could not record, each lost
// thing once.
type Lost struct {
	// Events: reclaims not recorded because the map was full.
	Events uint64 `json:"events"`
	// TaskStorage: reclaims (and throttles) not recorded because the
	// kernel's per-task storage, where a reclaim's start waits for its
	// end, had no room or (on 6.1) was busy on the CPU.
	TaskStorage uint64 `json:"task_storage"`
	// WaitedDeltas are not lost: deltas that had to wait in their cgroup
	// because its parent could get no entry, counted once per wait. Stat
	// files of their cgroup and read --all count them; stat files of the
	// ancestors only once a later flush passes them up.
	WaitedDeltas uint64 `json:"waited_deltas"`
	// RstatMarks: updates rstat was not told about (fentry/kprobe modes).
	RstatMarks uint64 `json:"rstat_marks"`
	// RemovedDeltas: removed cgroups whose last delta found no room in
	// their parent's entry.
	RemovedDeltas uint64 `json:"removed_deltas"`
}

// Any reports whether anything was lost (waited deltas are not).
func (l Lost) Any() bool {
	return l.Events > 0 || l.TaskStorage > 0 || l.RstatMarks > 0 || l.RemovedDeltas > 0
}

// Memory is what the maps take, in bytes: the preallocated maps from the
// load on, plus one entry per cgroup that reclaimed (or has a descendant
// that did) and one per cgroup throttled after memory.high (or with a
// descendant that was), whatever the number of CPUs.
type Memory struct {
	Preallocated uint64 `json:"preallocated_bytes"`
	PerCgroup    uint64 `json:"per_cgroup_bytes"`
	PerThrottled uint64 `json:"per_throttled_cgroup_bytes"`
	Used         uint64 `json:"used_bytes"`    // Preallocated + entries x PerCgroup + throttled x PerThrottled
	AtMost       uint64 `json:"at_most_bytes"` // Preallocated + max entries x (PerCgroup + PerThrottled)
}

// Status is what a pin path holds: whether it is loaded, with what, how
// full the maps are, and which cgroups have stat files.
type Status struct {
	Loaded    bool           `json:"loaded"`
	PinPath   string         `json:"pin_path"`
	Kernel    string         `json:"kernel"`
	Record    *loader.Record `json:"load,omitempty"`
	Health    *Health        `json:"maps,omitempty"`
	StatFiles []string       `json:"stat_files"`
	// Stale are stat files whose cgroup was removed.
	Stale []string `json:"stale_stat_files"`
	// Subscribers are the readers of the event stream (trace, watch's
	// slow reclaims, serve's exemplars).
	Subscribers []Subscriber `json:"subscribers"`
}

// ReadStatus reports on the pin path; a pin path with no load is a Status
// with Loaded false, not an error.
func ReadStatus(pinPath string) (*Status, error) {
	st := &Status{PinPath: pinPath, Kernel: loader.KernelRelease(), StatFiles: []string{}, Stale: []string{}}
	p, err := Open(pinPath)
	if errors.Is(err, loader.ErrNotLoaded) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	defer p.Close()
	st.Loaded, st.Record = true, p.Record
	snap, err := p.Snapshot(Query{Fill: true})
	if err != nil {
		return nil, err
	}
	st.Health = &snap.Health
	files, err := p.Dir.StatFileCgroups()
	if err != nil {
		return nil, err
	}
	for _, rel := range files {
		st.StatFiles = append(st.StatFiles, rel)
		if p.Dir.Stale(rel, p.Record.CgroupRoot) {
			st.Stale = append(st.Stale, rel)
		}
	}
	subs, err := Subscribers(pinPath)
	if err != nil {
		return nil, err
	}
	st.Subscribers = subs
	return st, nil
}

// health reads the lost counters, and the map's fill: entries when a copy
// counted them, else by walking its keys if fill asks for it.
func (h *Handle) health(entries int, fill bool) (Health, error) {
	hl := Health{Flush: h.Record.Flush, WalkHoldsCgroupMutex: h.Record.Flush == loader.Walk,
		Throttle: h.Record.Throttle, ThrottleRefused: h.Record.ThrottleRefused}
	var err error
	switch {
	case entries >= 0:
		hl.Stats = Fill{Entries: entries, MaxEntries: h.stats.MaxEntries()}
	case fill:
		if hl.Stats, err = countEntries(h.stats); err != nil {
			return hl, err
		}
	}
	if entries >= 0 || fill {
		// Few: only throttled cgroups and their ancestors have one.
		if hl.Throttles, err = countEntries(h.throttles); err != nil {
			return hl, err
		}
		hl.Memory = h.memory(hl.Stats.Entries, hl.Throttles.Entries)
	}
	if hl.Lost, err = h.LostCounts(); err != nil {
		return hl, err
	}
	return hl, nil
}

// memory is what the maps take with entries in the stats map and
// throttled in the throttles map.
func (h *Handle) memory(entries, throttled int) Memory {
	cpus, _ := ebpf.PossibleCPU()
	return MemoryOf(h.stats.ValueSize(), h.chunks.ValueSize(), h.stats.MaxEntries(), entries, throttled, cpus)
}

// LostCounts reads the lost counters.
func (h *Handle) LostCounts() (Lost, error) {
	var l Lost
	counters := map[bpf.CgrstatLostCounter]*uint64{
		bpf.CgrstatLostCounterLOST_EVENT:        &l.Events,
		bpf.CgrstatLostCounterLOST_PARENT:       &l.WaitedDeltas,
		bpf.CgrstatLostCounterLOST_RSTAT:        &l.RstatMarks,
		bpf.CgrstatLostCounterLOST_REMOVED:      &l.RemovedDeltas,
		bpf.CgrstatLostCounterLOST_TASK_STORAGE: &l.TaskStorage,
	}
	for key, c := range counters {
		var err error
		if *c, err = sumPerCPU(h.lost, key); err != nil {
			return Lost{}, err
		}
	}
	return l, nil
}

// Sizes of the kernel's hash-map bookkeeping, for MemoryOf.
const (
	htabElemHeader = 48 // struct htab_elem before the key
	// print_copies: PRINT_COPIES preallocated elements of struct counters
	printCopies    = 64
	memAllocHeader = 8 // bpf_mem_alloc's free-list link
	sessionsSlots  = 256
	sessionBytes   = htabElemHeader + 8 + 8
	infoBytes      = 2048
)

// Value sizes of the stats and tree maps, for MemoryOf without a load.
var (
	StatBytes      = uint32(binary.Size(bpf.CgrstatCgstat{}))
	throttleBytes  = uint32(binary.Size(bpf.CgrstatThrottleStat{}))
	TreeChunkBytes = uint32(binary.Size(bpf.CgrstatTreeChunk{}))

	printCopyBytes = uint64(htabElemHeader + 8 + binary.Size(bpf.CgrstatCounters{}))
	// throttle_copies: as many, of the throttle's counters
	throttleCopyBytes = uint64(htabElemHeader + 8 + binary.Size(bpf.CgrstatThrottleCounters{}))
	// per CPU: the lost counters, and the print copies' spare elements
	perCPUBytes = uint64(bpf.CgrstatLostCounterLOST_MAX)*8 + printCopyBytes + throttleCopyBytes
)

// MemoryOf computes what the maps take: stats entries, and the throttle's
// (throttles: one per cgroup that throttled after memory.high, and per
// ancestor of one; as many at most), are allocated one by one
// (BPF_F_NO_PREALLOC) from the kernel's size classes; the sessions, the
// stat-file readers' print copies, an empty tree chunk and the small maps
// are preallocated at load. Per CPU there are only the lost counters and a
// spare print copy. Not counted: the tree walk's chunks (one 4 KiB
// allocation per about 45 cgroups walked, kept for the next walk).
func MemoryOf(statBytes, chunkBytes, maxEntries uint32, entries, throttled, cpus int) Memory {
	per := sizeClass(uint64(htabElemHeader + 8 + roundUp8(statBytes) + memAllocHeader))
	perThrottled := sizeClass(uint64(htabElemHeader + 8 + roundUp8(throttleBytes) + memAllocHeader))
	pre := uint64(roundUp8(chunkBytes)) + sessionsSlots*sessionBytes + printCopies*(printCopyBytes+throttleCopyBytes) + infoBytes + uint64(cpus)*perCPUBytes
	return Memory{Preallocated: pre, PerCgroup: per, PerThrottled: perThrottled,
		Used:   pre + uint64(entries)*per + uint64(throttled)*perThrottled,
		AtMost: pre + uint64(maxEntries)*(per+perThrottled)}
}

// MemoryFor is what the maps of a load of up to maxCgroups take before
// any cgroup reclaims, on this machine's CPUs.
func MemoryFor(maxCgroups uint32) Memory {
	cpus, _ := ebpf.PossibleCPU()
	return MemoryOf(StatBytes, TreeChunkBytes, maxCgroups, 0, 0, cpus)
}

func roundUp8(n uint32) uint32 { return (n + 7) &^ 7 }

// sizeClass is the kmalloc size class that holds n bytes.
func sizeClass(n uint64) uint64 {
	for _, c := range []uint64{16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192} {
		if n <= c {
			return c
		}
	}
	return (n + 4095) &^ 4095
}

// countEntries walks the keys only: values are large.
func countEntries(m *ebpf.Map) (Fill, error) {
	f := Fill{MaxEntries: m.MaxEntries()}
	var prev any // nil asks for the first key
	for {
		var key uint64
		err := m.NextKey(prev, &key)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return f, nil
		}
		if err != nil {
			return f, fmt.Errorf("counting map entries: %w", err)
		}
		f.Entries++
		prev = key
	}
}

func sumPerCPU(m *ebpf.Map, key bpf.CgrstatLostCounter) (uint64, error) {
	var vals []uint64
	if err := m.Lookup(key, &vals); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, fmt.Errorf("reading lost counter %d: %w", key, err)
	}
	var sum uint64
	for _, v := range vals {
		sum += v
	}
	return sum, nil
}
