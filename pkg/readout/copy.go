package readout

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

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

// Read returns the freshly flushed stats of each cgroup in cgs, and with all
// of every cgroup below them too, parents before children.
func (h *Handle) Read(cgs []cgroup.Cgroup, all bool) ([]reclaim.Stat, error) {
	var out []reclaim.Stat
	for _, c := range cgs {
		if !all {
			s, err := h.ReadOne(c)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
			continue
		}
		below, err := h.Subtree(c)
		if err != nil {
			return nil, err
		}
		if out == nil { // one tree, as serve reads: no copy of ~2 KiB per cgroup
			out = below
			continue
		}
		out = append(out, below...)
	}
	return out, nil
}

// Subtree returns the stats of c and every cgroup below it from one
// consistent copy of the map (see bpf/cgrstat.c): a cgroup's value is its
// total plus the pending of every cgroup of its subtree, so that no flush
// is needed and every parent is exactly its own reclaim plus its children's.
func (h *Handle) Subtree(c cgroup.Cgroup) ([]reclaim.Stat, error) {
	members, err := h.Members(c)
	if err != nil {
		return nil, err
	}
	entries, err := h.CopyStats()
	if err != nil {
		return nil, err
	}
	return hierarchical(members, entries, h.Record.CgroupVersion == 1), nil
}

// hierarchical computes each member's value; members come parents first.
// Most cgroups of a big tree have no entry: they cost no counter arithmetic.
func hierarchical(members []Member, entries map[uint64]*bpf.CgrstatCgstat, v1 bool) []reclaim.Stat {
	index := make(map[uint64]int, len(members))
	for i, m := range members {
		index[m.ID] = i
	}
	// pending[i]: the pending counters of i's subtree, nil where there are none.
	pending := make([]*bpf.CgrstatCounters, len(members))
	add := func(i int, c *bpf.CgrstatCounters) {
		if pending[i] == nil {
			pending[i] = &bpf.CgrstatCounters{}
		}
		reclaim.Add(pending[i], c)
	}
	// Children after parents: summing backwards folds each subtree into its top.
	for i := len(members) - 1; i >= 0; i-- {
		if e := entries[members[i].ID]; e != nil && e.Pending != (bpf.CgrstatCounters{}) {
			add(i, &e.Pending)
		}
		if j, ok := index[members[i].Parent]; ok && i > 0 && pending[i] != nil {
			add(j, pending[i])
		}
	}
	out := make([]reclaim.Stat, len(members))
	for i, m := range members {
		var v bpf.CgrstatCounters
		if e := entries[m.ID]; e != nil {
			v = e.Total
		}
		if pending[i] != nil {
			reclaim.Add(&v, pending[i])
		}
		out[i] = reclaim.FromCounters(m.ID, m.Path, &v)
		out[i].SetFigures(&m.Figures, v1)
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
	var keys []uint64
	var vals []bpf.CgrstatCgstat
	for try := 0; try < copyTries; try++ {
		before, err := readSeq(h.seq)
		if err != nil {
			return nil, err
		}
		var n int
		keys, vals, n, err = readAll(h.stats, keys, vals)
		if err != nil {
			return nil, err
		}
		after, err := readSeq(h.seq)
		if err != nil {
			return nil, err
		}
		if after.Begun != before.Done {
			continue
		}
		out := make(map[uint64]*bpf.CgrstatCgstat, n)
		for i := 0; i < n; i++ {
			out[keys[i]] = &vals[i]
		}
		return out, nil
	}
	return nil, ErrMoving
}

func readSeq(m *ebpf.Map) (bpf.CgrstatFlushSeq, error) {
	var s bpf.CgrstatFlushSeq
	if err := m.Lookup(uint32(0), &s); err != nil {
		return s, fmt.Errorf("reading the flush sequence: %w", err)
	}
	return s, nil
}

// batchSize is large enough that a hash bucket always fits.
const batchSize = 256

// readAll reads the whole map in batches into keys and vals, grown as
// needed (entries are 3.6 KB: a read sized for max_entries would allocate
// tens of MB for a map that holds a few cgroups).
func readAll(m *ebpf.Map, keys []uint64, vals []bpf.CgrstatCgstat) ([]uint64, []bpf.CgrstatCgstat, int, error) {
	var cursor ebpf.MapBatchCursor
	got := 0
	for {
		// Room for a whole batch: a batch needs room for a whole hash bucket.
		if len(keys) < got+batchSize {
			keys = append(keys, make([]uint64, got+batchSize-len(keys))...)
			vals = append(vals, make([]bpf.CgrstatCgstat, got+batchSize-len(vals))...)
		}
		n, err := m.BatchLookup(&cursor, keys[got:got+batchSize], vals[got:got+batchSize], nil)
		got += n
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, vals, got, nil
		}
		if err != nil {
			return keys, vals, 0, fmt.Errorf("reading the stats map: %w", err)
		}
	}
}

// Flush flushes c's subtree: stress flushes a scratch cgroup's parent
// before removing it (see stress.Load).
func (h *Handle) Flush(c cgroup.Cgroup) error {
	_, err := h.ReadOne(c)
	return err
}

// Forget has nothing to do: the BPF side hands a removed cgroup's reclaim
// to its parent at rmdir and deletes its entry when the kernel releases it.
func (h *Handle) Forget([]uint64) error { return nil }
