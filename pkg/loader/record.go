package loader

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"
)

// Layout is the version of what Load pins. A pin path with another layout
// was made by another cgrstat version and must be unloaded by it (or removed).
const Layout = 6 // 6: LOST_TASK_STORAGE in the lost map (5 entries); 5: the throttle in a map of its own (throttles); 4: max and high share limit_hist (struct counters); compact tree walk (tree_chunks)

// Record says what was loaded and why; it lives in the pinned info map so
// that every later command (pin, read, status, unload) sees the same facts.
type Record struct {
	Layout        int       `json:"layout"`
	Version       string    `json:"version"` // of the cgrstat that loaded
	Flush         Mode      `json:"flush"`
	Refused       []Refusal `json:"refused,omitempty"`
	RstatKfuncs   string    `json:"rstat_kfuncs"`
	MaxCgroups    uint32    `json:"max_cgroups"`
	CgroupVersion int       `json:"cgroup_version"`
	CgroupRoot    string    `json:"cgroup_root"`
	Kernel        string    `json:"kernel"`
	LoadedAt      time.Time `json:"loaded_at"`
	// Throttle says whether the throttle after memory.high is measured
	// (fentry/fexit on mem_cgroup_handle_over_high attached); where not,
	// ThrottleRefused says why, and readers say "unavailable".
	Throttle        bool   `json:"throttle"`
	ThrottleRefused string `json:"throttle_refused,omitempty"`
	// ProgramIDs lets unload confirm that the kernel freed every program.
	ProgramIDs []ebpf.ProgramID `json:"program_ids"`
	// Owner names the process (pid-start time) that will unload this load
	// when it ends, e.g. check; empty for a load meant to stay. A later
	// check unloads a load whose owner died without doing so.
	Owner string `json:"owner,omitempty"`
	// PinPathMade is the outermost directory this load created for its pin
	// path: the pin path itself or an ancestor; empty when the pin path
	// existed. Unload removes the directories from the pin path up to it,
	// each only if empty, and no other: a directory the user made stays.
	PinPathMade string `json:"pin_path_made,omitempty"`
}

// Same says whether r and o record the same load: a pin path unloaded and
// loaded again holds another (its time and programs differ).
func (r *Record) Same(o *Record) bool {
	return r != nil && o != nil && r.LoadedAt.Equal(o.LoadedAt) && slices.Equal(r.ProgramIDs, o.ProgramIDs)
}

// Refusal is a flush mode that auto tried and the kernel refused.
type Refusal struct {
	Mode   Mode   `json:"mode"`
	Reason string `json:"reason"`
}

func writeRecord(m *ebpf.Map, r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	buf := make([]byte, m.ValueSize())
	if len(b) >= len(buf) {
		return fmt.Errorf("load record of %d bytes does not fit the info map", len(b))
	}
	copy(buf, b)
	return m.Update(uint32(0), buf, ebpf.UpdateAny)
}

func readRecord(m *ebpf.Map) (*Record, error) {
	var buf []byte
	if err := m.Lookup(uint32(0), &buf); err != nil {
		return nil, fmt.Errorf("reading load record: %w", err)
	}
	var r Record
	if err := json.Unmarshal(bytes.TrimRight(buf, "\x00"), &r); err != nil {
		return nil, fmt.Errorf("decoding load record: %w", err)
	}
	return &r, nil
}
