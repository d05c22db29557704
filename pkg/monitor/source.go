// Package monitor is the one place where the long-running commands (serve,
// watch) get their data: a snapshot of every cgroup of a subtree, flushed
// once and read in batches, as read --all does, plus the health of the load.
// How the data is read can change here alone. The data itself is reclaim's
// own model, aliased rather than copied (see Cgroup): when it grew causes
// and histograms, this file did not change, and serve and watch each
// changed where they use the new fields.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// Counters are totals of one kind of reclaim, since the collectors were
// loaded (or since the cgroup was created, if later).
type Counters = reclaim.Counters

// Cause is why a task reclaimed; Causes lists them all.
type Cause = reclaim.Cause

// Causes are every cause, in the order of Cgroup.Causes.
var Causes = []Cause{reclaim.Max, reclaim.High, reclaim.Proactive, reclaim.Direct}

// Cgroup is one cgroup of a snapshot: its hierarchical totals. It is the
// reader's own type, not a copy: at 10,000 cgroups with their histograms a
// snapshot is megabytes, and serve's footprint matters more than a layer.
// Memcg() is memory-cgroup reclaim (causes max, high and proactive).
type Cgroup = reclaim.Stat

// Health is the state of the load itself.
type Health struct {
	Flush  loader.Mode
	Stats  loader.Fill // the one per-cgroup map
	Memory loader.Memory
	Lost   loader.Lost
	// Throttle says whether the throttle after memory.high is measured;
	// ThrottleRefused why not (loader.Record).
	Throttle        bool
	ThrottleRefused string
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
//
// A Source holds no handle on the load between reads: it opens the load at
// its pin path for each read. So unload, run while serve or watch reads the
// same pin path, frees every program as it does alone (a handle kept open
// would keep the programs and maps, and unload would wait for them in
// vain), a read after it fails with ErrNotLoaded, and the first read after
// a new load there reads the new load. Opening costs well under a
// millisecond, next to a flush and a read of the subtree.
type Source struct {
	mu      sync.Mutex
	pinPath string
	top     cgroup.Cgroup
}

// NewSource reads the subtree below top of the load at pinPath.
func NewSource(pinPath string, top cgroup.Cgroup) *Source {
	return &Source{pinPath: pinPath, top: top}
}

// PinPath is where the Source reads the load.
func (s *Source) PinPath() string { return s.pinPath }

// Read flushes the subtree once and reads it, holding the pin path's lock
// shared as read does, so that no load, unload, pin or unpin runs
// meanwhile. With no load at the pin path the error wraps
// loader.ErrNotLoaded.
func (s *Source) Read() (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := loader.Lock(context.Background(), s.pinPath, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	p, err := loader.Open(s.pinPath)
	if errors.Is(err, loader.ErrNotLoaded) {
		return nil, fmt.Errorf("%w at %s", err, s.pinPath)
	}
	if err != nil {
		return nil, err
	}
	defer p.Close()
	start := time.Now()
	stats, err := reclaim.Read(p, []cgroup.Cgroup{s.top}, true)
	if err != nil {
		return nil, err
	}
	usage, err := p.Usage()
	if err != nil {
		return nil, fmt.Errorf("reading map fill: %w", err)
	}
	return &Snapshot{
		At:      start,
		Took:    time.Since(start),
		Cgroups: stats,
		Health: Health{Flush: p.Record.Flush, Stats: usage.Stats, Memory: usage.Memory, Lost: usage.Lost,
			Throttle: p.Record.Throttle, ThrottleRefused: p.Record.ThrottleRefused},
	}, nil
}

// Depth is how many components a cgroup path has below the root.
func Depth(path string) int {
	path = strings.Trim(path, "/")
	if path == "" {
		return 0
	}
	return strings.Count(path, "/") + 1
}
