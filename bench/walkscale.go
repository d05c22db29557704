package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/cgroupiter"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// WalkScale is the walk-mode read of a tree's top where every cgroup has
// reclaim history (an entry in the stats map) and 1% have new data, against
// an empty cgroup iterator walking the same tree; and the map memory then.
type WalkScale struct {
	CPUs int `json:"cpus"` // online
	N    int `json:"n"`
	// NewPerRead is how many cgroups have new data before each read.
	NewPerRead int     `json:"new_per_read"`
	ReadNS     []int64 `json:"read_ns"`  // cat of the top's stat file
	EmptyNS    []int64 `json:"empty_ns"` // cat of an empty iterator over the same tree
	Entries    int     `json:"entries"`
	// StatsMemlock and MapsMemlock are the kernel's own accounting (fdinfo
	// memlock) of the stats map and of every map of the load.
	// Dump is the stat file program's run time over the timed reads.
	Dump         Cost           `json:"dump"`
	StatsMemlock uint64         `json:"stats_memlock"`
	MapsMemlock  uint64         `json:"maps_memlock"`
	Computed     readout.Memory `json:"computed"`
}

const walkScaleReads = 9

// walkScale measures WalkScale at n cgroups. Reclaim history is written
// into the map from here rather than made by reclaiming in 10,000 cgroups
// (hours under TCG): what a walk costs per cgroup depends only on whether
// the cgroup has an entry and whether that entry has new data, and the
// bench checks that every read brings exactly the new data to the top.
func (b *bench) walkScale(ctx context.Context, r *Result, n int) (err error) {
	undo, err := b.setUp(r)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, undo()) }()
	t, err := buildTree(ctx, b.h, b.root.Child("top"), n)
	defer func() { err = errors.Join(err, t.destroy()) }()
	if err != nil {
		return err
	}
	b.logf("walk scale: tree of %d built in %v", n, t.built.Round(time.Millisecond))
	if _, err := loader.Load(b.loadOptions(loader.Walk)); err != nil {
		return fmt.Errorf("loading cgrstat: %w", err)
	}
	defer func() {
		err = errors.Join(err, unload(b.pinPath))
	}()
	p, err := readout.Open(b.pinPath)
	if err != nil {
		return err
	}
	defer p.Close()
	// The bench writes made-up history into the stats map and times the
	// dump program: its own handles on them, which a read never needs.
	stats, err := ebpf.LoadPinnedMap(p.Dir.Map(bpf.CgrstatMapStats), nil)
	if err != nil {
		return err
	}
	defer stats.Close()
	dump, err := ebpf.LoadPinnedProgram(p.Dir.Program(bpf.CgrstatProgDump), nil)
	if err != nil {
		return err
	}
	defer dump.Close()
	ws := WalkScale{CPUs: runtime.NumCPU(), N: n, NewPerRead: newPerRead(n)}
	ids, err := history(stats, t.nodes)
	if err != nil {
		return err
	}
	statFile, err := pin.Pin(p, t.top)
	if err != nil {
		return err
	}
	dump0, err := cost(dump)
	if err != nil {
		return err
	}
	if ws.ReadNS, err = timedReads(stats, statFile, ids, ws.NewPerRead); err != nil {
		return err
	}
	if ws.Dump, err = cost(dump); err != nil {
		return err
	}
	ws.Dump = ws.Dump.sub(dump0)
	if ws.EmptyNS, err = b.emptyWalks(t.top); err != nil {
		return err
	}
	if err := ws.memory(p); err != nil {
		return err
	}
	r.WalkScale = append(r.WalkScale, ws)
	return nil
}

// history gives every cgroup of the tree an entry with a total, as if each
// had reclaimed once and been flushed.
func history(stats *ebpf.Map, nodes []cgroup.Cgroup) ([]uint64, error) {
	var ids []uint64
	for _, c := range nodes {
		id, err := cgroup.ID(c)
		if err != nil {
			return nil, err
		}
		var s bpf.CgrstatCgstat
		s.Total.LimitHist[20] = 1
		s.Total.MaxLimitDelayNs = 5000
		if err := stats.Update(id, &s, ebpf.UpdateAny); err != nil {
			return nil, fmt.Errorf("writing history of %s: %w", c.Rel, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// timedReads reads the stat file after giving k random cgroups new data
// each time; the top's count must grow by exactly k.
func timedReads(stats *ebpf.Map, statFile string, ids []uint64, k int) ([]int64, error) {
	rng := rand.New(rand.NewSource(1))
	last, err := reclaim.ReadFile(statFile) // untimed: the first run translates code under TCG
	if err != nil {
		return nil, err
	}
	var out []int64
	for i := 0; i < walkScaleReads; i++ {
		for _, j := range rng.Perm(len(ids))[:k] {
			var s bpf.CgrstatCgstat
			if err := stats.Lookup(ids[j], &s); err != nil {
				return nil, err
			}
			s.Pending.LimitHist[21]++
			s.Adds++
			if err := stats.Update(ids[j], &s, ebpf.UpdateExist); err != nil {
				return nil, err
			}
		}
		start := time.Now()
		st, err := reclaim.ReadFile(statFile)
		if err != nil {
			return nil, err
		}
		out = append(out, since(start))
		if st.Count != last.Count+uint64(k) {
			return nil, fmt.Errorf("the top went from %d to %d reclaims, want +%d", last.Count, st.Count, k)
		}
		last = st
	}
	return out, nil
}

// emptyWalks times the same cat of an iterator that does nothing per cgroup.
func (b *bench) emptyWalks(top cgroup.Cgroup) ([]int64, error) {
	spec, err := LoadBaseline()
	if err != nil {
		return nil, err
	}
	prog, err := ebpf.NewProgram(spec.Programs[BaselineProgEmptyWalk])
	if err != nil {
		return nil, fmt.Errorf("loading the empty iterator: %w", err)
	}
	defer prog.Close()
	it, err := cgroupiter.Open(prog, top, cgroupiter.DescendantsPost)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	path := filepath.Join(b.pinPath, "empty-walk")
	if err := it.Pin(path); err != nil {
		return nil, err
	}
	defer os.Remove(path)
	var out []int64
	for i := 0; i <= walkScaleReads; i++ {
		start := time.Now()
		if _, err := os.ReadFile(path); err != nil {
			return nil, err
		}
		if i > 0 { // the first is untimed, as for the stat file
			out = append(out, since(start))
		}
	}
	return out, nil
}

func (ws *WalkScale) memory(p *readout.Handle) error {
	snap, err := p.Snapshot(readout.Query{Fill: true})
	if err != nil {
		return err
	}
	ws.Entries, ws.Computed = snap.Health.Stats.Entries, snap.Health.Memory
	for _, name := range loader.MapNames() {
		mm, err := mapMemory(p.Dir.Map(name))
		if err != nil {
			return err
		}
		ws.MapsMemlock += mm.Memlock
		if name == bpf.CgrstatMapStats {
			ws.StatsMemlock = mm.Memlock
		}
	}
	return nil
}

func newPerRead(n int) int {
	if v := os.Getenv("WS_NEW"); v != "" {
		var k int
		fmt.Sscanf(v, "%d", &k)
		return k
	}
	return max(n/100, 1)
}
