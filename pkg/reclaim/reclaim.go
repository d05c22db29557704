// Package reclaim reads the flushed reclaim statistics of cgroups: one
// cgroup through its iterator, or whole subtrees by flushing once and then
// reading the totals map in batches.
package reclaim

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/cgroupiter"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
)

const lineFormat = "cg_id: %d, total_vmscan_delay: %d, vmscan_count: %d, nr_reclaimed: %d"

// ParseLine parses a stat file's line. Trailing fields that a later
// cgrstat may add are ignored, as the seed's own parsers do.
func ParseLine(line string) (Stat, error) {
	var s Stat
	n, err := fmt.Sscanf(line, lineFormat, &s.ID, &s.DelayNS, &s.Count, &s.Reclaimed)
	if err != nil || n != 4 {
		return Stat{}, fmt.Errorf("malformed stat line %q", strings.TrimSpace(line))
	}
	return s, nil
}

// Flush flushes c's subtree and returns c's line, read through a fresh iterator.
func Flush(p *loader.Pinned, c cgroup.Cgroup) (Stat, error) {
	b, err := cgroupiter.ReadOnce(p.Dump, c, pin.OrderFor(p.Record.Flush))
	if err != nil {
		return Stat{}, err
	}
	s, err := ParseLine(string(b))
	s.Path = c.Rel
	return s, err
}

// ReadFile reads and parses a pinned stat file, as cat would.
func ReadFile(path string) (Stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, fmt.Errorf("reading stat file: %w", err)
	}
	return ParseLine(string(b))
}

// Read returns the freshly flushed stats of each cgroup in cgs, and with all
// of every cgroup below them too, parents before children.
func Read(p *loader.Pinned, cgs []cgroup.Cgroup, all bool) ([]Stat, error) {
	var out []Stat
	for _, c := range cgs {
		s, err := Flush(p, c)
		if err != nil {
			return nil, err
		}
		if !all {
			out = append(out, s)
			continue
		}
		below, err := subtree(p, c)
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

// subtree reads the totals of c and its descendants, already flushed.
func subtree(p *loader.Pinned, c cgroup.Cgroup) ([]Stat, error) {
	members, err := Members(p, c)
	if err != nil {
		return nil, err
	}
	totals, err := Totals(p.Totals)
	if err != nil {
		return nil, err
	}
	out := make([]Stat, len(members))
	for i, m := range members {
		t := totals[m.ID]
		out[i] = Stat{ID: m.ID, Path: m.Path, DelayNS: t.DelayNs, Count: t.Count, Reclaimed: t.Reclaimed}
	}
	return out, nil
}

// batchSize is large enough that a hash bucket always fits.
const batchSize = 4096

// Totals reads the whole totals map in batches.
func Totals(m *ebpf.Map) (map[uint64]bpf.CgrstatCounters, error) {
	out := make(map[uint64]bpf.CgrstatCounters, m.MaxEntries())
	keys := make([]uint64, batchSize)
	vals := make([]bpf.CgrstatTotal, batchSize)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			out[keys[i]] = vals[i].State
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading totals: %w", err)
		}
	}
}

// Forget deletes the entries of removed cgroups, so that they do not fill
// the maps. Flush their tree first: what they had not passed on is lost.
func Forget(p *loader.Pinned, ids []uint64) error {
	for _, m := range []*ebpf.Map{p.Totals, p.Pcpu} {
		for _, id := range ids {
			if err := m.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("forgetting cgroup %d: %w", id, err)
			}
		}
	}
	return nil
}

// Collector flushes and forgets through a load; stress uses it for the
// scratch cgroups it makes and removes.
type Collector struct{ P *loader.Pinned }

// Flush flushes c's subtree.
func (c Collector) Flush(cg cgroup.Cgroup) error {
	_, err := Flush(c.P, cg)
	return err
}

// Forget drops the entries of removed cgroups.
func (c Collector) Forget(ids []uint64) error { return Forget(c.P, ids) }
