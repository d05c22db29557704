package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
)

// Fill is how full one per-cgroup map is.
type Fill struct {
	Entries    int    `json:"entries"`
	MaxEntries uint32 `json:"max_entries"`
}

// Lost counts updates the collectors or the flush could not record.
type Lost struct {
	Events       uint64 `json:"events"`
	Flushes      uint64 `json:"flushes"`
	ParentDeltas uint64 `json:"parent_deltas"`
	RstatMarks   uint64 `json:"rstat_marks"`
}

// Usage is the live state of the maps of a load.
type Usage struct {
	Totals Fill `json:"totals"`
	Pcpu   Fill `json:"pcpu_stats"`
	Lost   Lost `json:"lost"`
}

// Status is what a pin path holds: whether it is loaded, with what, how
// full the maps are, and which cgroups have stat files.
type Status struct {
	Loaded    bool     `json:"loaded"`
	PinPath   string   `json:"pin_path"`
	Kernel    string   `json:"kernel"`
	Record    *Record  `json:"load,omitempty"`
	Usage     *Usage   `json:"maps,omitempty"`
	StatFiles []string `json:"stat_files"`
}

// ReadStatus reports on the pin path; a pin path with no load is a Status
// with Loaded false, not an error.
func ReadStatus(pinPath string) (*Status, error) {
	st := &Status{PinPath: pinPath, Kernel: KernelRelease(), StatFiles: []string{}}
	p, err := Open(pinPath)
	if errors.Is(err, ErrNotLoaded) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	defer p.Close()
	st.Loaded, st.Record = true, p.Record
	if st.Usage, err = p.Usage(); err != nil {
		return nil, err
	}
	if st.StatFiles, err = p.Dir.Pinned(); err != nil {
		return nil, err
	}
	if st.StatFiles == nil {
		st.StatFiles = []string{}
	}
	return st, nil
}

// Usage reads map fill and the lost-update counters.
func (p *Pinned) Usage() (*Usage, error) {
	var u Usage
	var err error
	if u.Totals, err = fill(p.Totals); err != nil {
		return nil, err
	}
	if u.Pcpu, err = fill(p.Pcpu); err != nil {
		return nil, err
	}
	counters := map[bpf.CgrstatLostCounter]*uint64{
		bpf.CgrstatLostCounterLOST_EVENT:  &u.Lost.Events,
		bpf.CgrstatLostCounterLOST_FLUSH:  &u.Lost.Flushes,
		bpf.CgrstatLostCounterLOST_PARENT: &u.Lost.ParentDeltas,
		bpf.CgrstatLostCounterLOST_RSTAT:  &u.Lost.RstatMarks,
	}
	for key, c := range counters {
		if *c, err = sumPerCPU(p.Lost, key); err != nil {
			return nil, err
		}
	}
	return &u, nil
}

// fill walks the keys only: values of per-CPU maps are large.
func fill(m *ebpf.Map) (Fill, error) {
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
