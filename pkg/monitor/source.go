// Package monitor is the one place where the long-running commands (serve,
// watch) get their data: a snapshot of every cgroup of a subtree, flushed
// once and read in batches, as read --all does, plus the health of the load.
// When the data model grows (histograms, causes), only this file changes.
package monitor

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// Counters are a cgroup's hierarchical totals since the collectors were
// loaded (or since the cgroup was created, if later).
type Counters struct {
	DelayNS   uint64 // time spent in reclaim
	Count     uint64 // reclaims
	Reclaimed uint64 // pages reclaimed
}

// Cgroup is one cgroup of a snapshot.
type Cgroup struct {
	ID    uint64
	Path  string // relative to the hierarchy's root, "/" for the root
	Depth int    // path components below the root: 0 for "/"
	Counters
}

// Health is the state of the load itself.
type Health struct {
	Flush  loader.Mode
	Totals loader.Fill
	Pcpu   loader.Fill
	Lost   loader.Lost
}

// Snapshot is one consistent read of a subtree: parents before children.
type Snapshot struct {
	At      time.Time
	Took    time.Duration // flush, tree walk and map reads
	Cgroups []Cgroup
	Health  Health
}

// Source reads snapshots of one subtree. Reads are serialized: the tree walk
// writes one shared map (see reclaim.Members), and two flushes at once would
// only cost twice for the same numbers.
type Source struct {
	mu  sync.Mutex
	p   *loader.Pinned
	top cgroup.Cgroup
}

// NewSource reads the subtree below top of the load p. p stays the caller's.
func NewSource(p *loader.Pinned, top cgroup.Cgroup) *Source {
	return &Source{p: p, top: top}
}

// Read flushes the subtree once and reads it.
func (s *Source) Read() (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	stats, err := reclaim.Read(s.p, []cgroup.Cgroup{s.top}, true)
	if err != nil {
		return nil, err
	}
	usage, err := s.p.Usage()
	if err != nil {
		return nil, fmt.Errorf("reading map fill: %w", err)
	}
	snap := &Snapshot{
		At:      start,
		Took:    time.Since(start),
		Cgroups: make([]Cgroup, len(stats)),
		Health:  Health{Flush: s.p.Record.Flush, Totals: usage.Totals, Pcpu: usage.Pcpu, Lost: usage.Lost},
	}
	for i, st := range stats {
		snap.Cgroups[i] = Cgroup{ID: st.ID, Path: st.Path, Depth: Depth(st.Path),
			Counters: Counters{DelayNS: st.DelayNS, Count: st.Count, Reclaimed: st.Reclaimed}}
	}
	return snap, nil
}

// Depth is how many components a cgroup path has below the root.
func Depth(path string) int {
	path = strings.Trim(path, "/")
	if path == "" {
		return 0
	}
	return strings.Count(path, "/") + 1
}
