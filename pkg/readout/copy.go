package readout

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/cgroupiter"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// ReadOne flushes c's subtree and returns c's stat, read through a fresh
// iterator, as cat of its stat file would.
func (h *Handle) ReadOne(c cgroup.Cgroup) (reclaim.Stat, error) {
	b, err := cgroupiter.ReadOnce(h.dump, c, OrderFor(h.Record.Flush))
	if err != nil {
		return reclaim.Stat{}, err
	}
	s, err := reclaim.ParseStat(string(b))
	s.Path = c.Rel
	return s, err
}

// copyRows makes one consistent copy of the stats map and appends to s
// the rows of every walked tree that f keeps; it returns the map's entries.
func (h *Handle) copyRows(s *Snapshot, trees [][]Member, f *Filter) (entries int, err error) {
	if len(trees) == 0 {
		return -1, nil
	}
	copied, throttles, err := h.copyMaps()
	if err != nil {
		return 0, err
	}
	from := len(s.Rows)
	for _, members := range trees {
		s.Cgroups += len(members)
		s.Rows = hierarchical(s.Rows, members, copied, throttles, h.Record.CgroupVersion == 1, f)
	}
	// A stat file says whether the throttle is measured; the map copy
	// does not, the load's record does.
	for i := from; i < len(s.Rows); i++ {
		s.Rows[i].Throttle.Measured = h.Record.Throttle
	}
	return len(copied), nil
}

// hierarchical appends to rows the members that f keeps, each with its
// value: a cgroup's value is its total plus the pending of every cgroup of
// its subtree (see bpf/cgrstat.c), so that no flush is needed and every
// parent is exactly its own reclaim plus its children's. Members come
// parents first. Most cgroups of a big tree have no entry: they cost no
// counter arithmetic, and those the filter drops no Stat either. The
// throttle's entries (throttles, few: only cgroups with memory.high
// throttle) are summed the same way.
func hierarchical(rows []Row, members []Member, entries map[uint64]*bpf.CgrstatCgstat, throttles map[uint64]*bpf.CgrstatThrottleStat, v1 bool, f *Filter) []Row {
	pending := subtreePending(members, func(id uint64) *bpf.CgrstatCounters {
		if e := entries[id]; e != nil {
			return &e.Pending
		}
		return nil
	}, reclaim.Add)
	var throttled []*bpf.CgrstatThrottleCounters
	if len(throttles) > 0 {
		throttled = subtreePending(members, func(id uint64) *bpf.CgrstatThrottleCounters {
			if t := throttles[id]; t != nil {
				return &t.Pending
			}
			return nil
		}, reclaim.AddThrottle)
	}
	// Room for every member at once: growing the slice copied and faulted
	// in 10,000 rows several times.
	rows = slices.Grow(rows, len(members))
	// The top's parent is the closest earlier row above it: with several
	// CGROUP arguments, a tree below another's top reads as below it.
	outer := -1
	for j := len(rows) - 1; j >= 0 && len(members) > 0; j-- {
		if below(members[0].Path, rows[j].Path) {
			outer = j
			break
		}
	}
	// shown[i]: the row of member i, or of its closest ancestor kept; outer for none.
	shown := make([]int32, len(members))
	for i := range members {
		m := &members[i]
		parent := outer
		if m.Up >= 0 {
			parent = int(shown[m.Up])
		}
		shown[i] = int32(parent)
		if !f.keep(m.Path, m.Depth) {
			continue
		}
		shown[i] = int32(len(rows))
		rows = append(rows, Row{Stat: reclaim.Stat{ID: m.ID, Path: m.Path}, Parent: parent, Depth: m.Depth})
		r := &rows[len(rows)-1]
		if e := entries[m.ID]; e != nil || pending != nil && pending[i] != nil {
			var v bpf.CgrstatCounters
			if e != nil {
				v = e.Total
			}
			if pending != nil && pending[i] != nil {
				reclaim.Add(&v, pending[i])
			}
			r.Stat = reclaim.FromCounters(m.ID, m.Path, &v)
		}
		r.SetFigures(&m.Figures, v1)
		if t := throttles[m.ID]; t != nil || throttled != nil && throttled[i] != nil {
			var tv bpf.CgrstatThrottleCounters
			if t != nil {
				tv = t.Total
			}
			if throttled != nil && throttled[i] != nil {
				reclaim.AddThrottle(&tv, throttled[i])
			}
			r.Throttle = reclaim.ThrottleFrom(&tv, false)
		}
	}
	return rows
}

// subtreePending is, for each member, the sum of the pending counters
// (pendingOf its id, nil without an entry) of its subtree, added with add;
// nil where they are all zero, and nil for all when all are (right after a
// flush: no slice of 10,000 nil pointers for read to fault in). Children
// come after parents: summing backwards folds each subtree into its top.
func subtreePending[C comparable](members []Member, pendingOf func(id uint64) *C, add func(a, b *C)) []*C {
	var zero C
	var out []*C
	addTo := func(i int, c *C) {
		if out == nil {
			out = make([]*C, len(members))
		}
		if out[i] == nil {
			out[i] = new(C)
		}
		add(out[i], c)
	}
	for i := len(members) - 1; i >= 0; i-- {
		if c := pendingOf(members[i].ID); c != nil && *c != zero {
			addTo(i, c)
		}
		if up := members[i].Up; up >= 0 && out != nil && out[i] != nil {
			addTo(up, out[i])
		}
	}
	return out
}

// copyTries bounds the retries of CopyStats. A flush step takes
// microseconds and a copy of the map milliseconds, so a retry is rare even
// with flushes running; 100 in a row mean something flushes without pause.
const copyTries = 100

// ErrMoving: flushes ran during every try to copy the map.
var ErrMoving = errors.New("the stats kept moving: no consistent copy of the map")

// CopyStats copies every entry of the stats map while no flush step ran
// (the consistent copy): it reads the finished flush steps, the map, then
// the begun ones, and tries again unless they are equal.
func (h *Handle) CopyStats() (map[uint64]*bpf.CgrstatCgstat, error) {
	stats, _, err := h.copyMaps()
	return stats, err
}

// copyMaps is CopyStats with the throttle's map, copied in the same
// window: one flush step drains both (bpf/cgrstat.c).
func (h *Handle) copyMaps() (map[uint64]*bpf.CgrstatCgstat, map[uint64]*bpf.CgrstatThrottleStat, error) {
	var keys, tkeys []uint64
	var vals []bpf.CgrstatCgstat
	var tvals []bpf.CgrstatThrottleStat
	for try := 0; try < copyTries; try++ {
		before, err := readSeq(h.seq)
		if err != nil {
			return nil, nil, err
		}
		var n, tn int
		keys, vals, n, err = readAll(h.stats, keys, vals)
		if err != nil {
			return nil, nil, err
		}
		tkeys, tvals, tn, err = readAll(h.throttles, tkeys, tvals)
		if err != nil {
			return nil, nil, err
		}
		after, err := readSeq(h.seq)
		if err != nil {
			return nil, nil, err
		}
		if after.Begun != before.Done {
			continue
		}
		return byID(keys, vals, n), byID(tkeys, tvals, tn), nil
	}
	return nil, nil, ErrMoving
}

// byID maps the first n keys to their values, pointing into vals.
func byID[V any](keys []uint64, vals []V, n int) map[uint64]*V {
	out := make(map[uint64]*V, n)
	for i := 0; i < n; i++ {
		out[keys[i]] = &vals[i]
	}
	return out
}

func readSeq(m *ebpf.Map) (bpf.CgrstatFlushSeq, error) {
	var s bpf.CgrstatFlushSeq
	if err := m.Lookup(uint32(0), &s); err != nil {
		return s, fmt.Errorf("reading the flush sequence: %w", err)
	}
	return s, nil
}

// The batches grow from firstBatch to maxBatch entries. Most cgroups never
// reclaim, so the map holds few entries, and each is 3.7 KB: a first batch
// of 256 made a read of 10 entries allocate (and the kernel fault in, the
// collector being off in read) 950 KB, 230 page faults and more than half a
// millisecond of a read --all of 100 cgroups. maxBatch is large enough that
// a hash bucket always fits; a batch smaller than a bucket (ENOSPC before
// any entry) is retried twice as large.
const maxBatch = 256

var firstBatch = 16 // a variable for TestKernelReadAllBatches

// readAll reads the whole map in batches into keys and vals, grown as
// needed (a read sized for max_entries would allocate tens of MB for a map
// that holds a few cgroups).
func readAll[V any](m *ebpf.Map, keys []uint64, vals []V) ([]uint64, []V, int, error) {
	var cursor ebpf.MapBatchCursor
	got := 0
	for batch := firstBatch; ; {
		if len(keys) < got+batch {
			keys = slices.Grow(keys[:got], batch)[:got+batch]
			vals = slices.Grow(vals[:got], batch)[:got+batch]
		}
		n, err := m.BatchLookup(&cursor, keys[got:got+batch], vals[got:got+batch], nil)
		got += n
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return keys, vals, got, nil
		case errors.Is(err, unix.ENOSPC) && n == 0 && batch < maxBatch:
			// The next bucket holds more entries than the batch: the
			// cursor stays before it.
		case err != nil:
			return keys, vals, 0, fmt.Errorf("reading the %s map: %w", mapName(m), err)
		}
		batch = min(2*batch, maxBatch)
	}
}

// Flush flushes c's subtree: stress flushes a scratch cgroup's parent
// before removing it (see stress.Flusher).
func (h *Handle) Flush(c cgroup.Cgroup) error {
	_, err := h.ReadOne(c)
	return err
}

// mapName is m's name as the kernel knows it, for an error.
func mapName(m *ebpf.Map) string {
	if info, err := m.Info(); err == nil {
		return info.Name
	}
	return "stats"
}
