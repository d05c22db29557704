package readout

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

// Snapshot is one read of a load: what read, a serve scrape, a watch
// frame and status each show, read once.
type Snapshot struct {
	At   time.Time     // when the read began
	Took time.Duration // walk, copy, arithmetic and health
	// Rows are the cgroups the query kept, each tree parents before
	// children (siblings by name).
	Rows []Row
	// Cgroups counts the cgroups read, kept by the filter or not.
	Cgroups int
	Health  Health
}

// Row is one cgroup of a snapshot: its hierarchical totals and the
// kernel's own figures (reclaim.Stat), and its place in the tree.
type Row struct {
	reclaim.Stat
	// Parent is the index in Rows of the closest ancestor kept, -1 for
	// none: with --match a parent may be filtered out.
	Parent int
	// Depth is the path's components below the hierarchy's root
	// (/system.slice/x.service is 2).
	Depth int
}

// Health is the state of the load itself, beside the numbers: its flush
// mode, how full its map is, what the BPF side could not record, and the
// stat files a read skipped. As JSON it is status's "maps".
type Health struct {
	Flush loader.Mode `json:"-"`
	Stats Fill        `json:"stats"` // the per-cgroup map
	// Throttles: the throttle's map, entries only for cgroups throttled
	// after memory.high and their ancestors (counted with Memory).
	Throttles Fill   `json:"throttles"`
	Memory    Memory `json:"memory"`
	// Lost is set when the BPF side could not record everything: the
	// numbers are then lower bounds.
	Lost Lost `json:"lost"`
	// WalkHoldsCgroupMutex: in walk mode every read walks its subtree with
	// the kernel's cgroup_mutex held, which blocks mkdir, rmdir and task
	// moves on the whole host meanwhile.
	WalkHoldsCgroupMutex bool `json:"walk_holds_cgroup_mutex"`
	// Stale are cgroups whose stat files were skipped: they were removed.
	Stale []string `json:"-"`
	// Throttle says whether the throttle after memory.high is measured;
	// ThrottleRefused why not (loader.Record, which status prints).
	Throttle        bool   `json:"-"`
	ThrottleRefused string `json:"-"`
}

// Query is what a snapshot reads.
type Query struct {
	// Cgroups are read each alone (as its stat file prints it, with the
	// kernel's figures beside), or with All each with every cgroup below
	// it, from one consistent copy of the stats map.
	Cgroups []cgroup.Cgroup
	All     bool
	// Filter, unless nil, keeps the rows to compute: the others cost a
	// walk's slot and no arithmetic.
	Filter *Filter
	// Fill counts the stats map's entries even when nothing copies it
	// (status); a copy counts them anyway.
	Fill bool
	// Rows, unless nil, is room for the rows that an earlier snapshot no
	// longer needs: serve reads every cgroup every scrape (2.7 KB a row
	// before a Stat's histograms went out of line), and
	// allocating them afresh each time made its peak RSS.
	Rows []Row
}

// Snapshot reads q.
func (h *Handle) Snapshot(q Query) (*Snapshot, error) {
	s := &Snapshot{At: time.Now(), Rows: q.Rows[:0]}
	entries := -1 // the stats map's, when a copy counted them
	if q.All {
		var trees [][]Member
		for _, c := range q.Cgroups {
			members, err := h.Members(c)
			if err != nil {
				return nil, err
			}
			trees = append(trees, members)
		}
		var err error
		if entries, err = h.copyRows(s, trees, q.Filter); err != nil {
			return nil, err
		}
	} else {
		for _, c := range q.Cgroups {
			s.Cgroups++
			if err := h.appendOne(s, c, q.Filter); err != nil {
				return nil, err
			}
		}
	}
	var err error
	if s.Health, err = h.health(entries, q.Fill); err != nil {
		return nil, err
	}
	s.Took = time.Since(s.At)
	return s, nil
}

// appendOne appends c's row, read as its stat file prints it (flushed
// first), with the kernel's figures read in a walk of c alone. Its parent
// is the closest earlier row above it, as --all's would be.
func (h *Handle) appendOne(s *Snapshot, c cgroup.Cgroup, f *Filter) error {
	depth := Depth(c.Rel)
	if !f.keep(c.Rel, depth) {
		return nil
	}
	st, err := h.ReadOne(c)
	if err != nil {
		return err
	}
	self, err := h.walkSelf(c)
	if err != nil {
		return err
	}
	if self.ID == st.ID {
		st.SetFigures(&self.Figures, h.Record.CgroupVersion == 1)
	}
	parent := -1
	for i := len(s.Rows) - 1; i >= 0; i-- {
		if below(c.Rel, s.Rows[i].Path) {
			parent = i
			break
		}
	}
	s.Rows = append(s.Rows, Row{Stat: st, Parent: parent, Depth: depth})
	return nil
}

// below says whether path is strictly below dir.
func below(path, dir string) bool {
	return path != dir && strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// Subtree returns the stats of c and every cgroup below it (see Snapshot),
// for whoever wants the numbers alone.
func (h *Handle) Subtree(c cgroup.Cgroup) ([]reclaim.Stat, error) {
	s, err := h.Snapshot(Query{Cgroups: []cgroup.Cgroup{c}, All: true})
	if err != nil {
		return nil, err
	}
	return s.Stats(), nil
}

// Stats are the rows' stats alone.
func (s *Snapshot) Stats() []reclaim.Stat {
	out := make([]reclaim.Stat, len(s.Rows))
	for i := range s.Rows {
		out[i] = s.Rows[i].Stat
	}
	return out
}

// Source reads snapshots of one subtree for the long-running commands
// (serve, watch). Reads are serialized: the tree walk writes one shared map
// (see Handle.Members), and two flushes at once would only cost twice for
// the same numbers.
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
	filter  Filter
}

// NewSource reads the subtree below top of the load at pinPath, the rows
// that pass filter.
func NewSource(pinPath string, top cgroup.Cgroup, filter Filter) *Source {
	return &Source{pinPath: pinPath, top: top, filter: filter}
}

// PinPath is where the Source reads the load.
func (s *Source) PinPath() string { return s.pinPath }

// Read reads the subtree once, holding the pin path's lock shared as read
// does, so that no load, unload, pin or unpin runs meanwhile. With no load
// at the pin path the error wraps loader.ErrNotLoaded.
func (s *Source) Read() (*Snapshot, error) { return s.ReadInto(nil) }

// ReadInto is Read with room for the rows (see Query.Rows): rows is
// overwritten.
func (s *Source) ReadInto(rows []Row) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := Lock(context.Background(), s.pinPath, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	h, err := Open(s.pinPath)
	if errors.Is(err, loader.ErrNotLoaded) {
		return nil, fmt.Errorf("%w at %s", err, s.pinPath)
	}
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.Snapshot(Query{Cgroups: []cgroup.Cgroup{s.top}, All: true, Filter: &s.filter, Rows: rows})
}

// Depth is how many components a cgroup path has below the root.
func Depth(path string) int {
	path = strings.Trim(path, "/")
	if path == "" {
		return 0
	}
	return strings.Count(path, "/") + 1
}
