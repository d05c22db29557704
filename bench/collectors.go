package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// maxBatches bounds the stress batches one order spends waiting for events.
const maxBatches = 40

// collectorTree is the size of the tree the collectors are measured on.
const collectorTree = 21

// orders are every attach order of the three sets (cgrstat, baseline,
// floor). A tracepoint runs its programs in attach order, and the first of
// them to touch task storage pays for cold caches (hundreds of ns per event
// on the host), so each set takes each place equally often.
var orders = [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}

// Order is what one attach order measured.
type Order struct {
	Order    []string `json:"order"`
	Cgrstat  Pair     `json:"cgrstat"`
	Baseline Pair     `json:"baseline"`
	Floor    Pair     `json:"floor"`
}

// collectors compares cgrstat's collectors in mode m with the baseline
// and the floor, all attached at once, on reclaim in a small tree.
func (b *bench) collectors(ctx context.Context, m loader.Mode) (c Collectors, err error) {
	c.Mode = m
	t, err := buildTree(ctx, b.h, b.root.Child("collectors"), collectorTree)
	defer func() { err = errors.Join(err, t.destroy()) }()
	if err != nil {
		return c, err
	}
	objs, sets, err := loadReference(b.h)
	if err != nil {
		return c, err
	}
	defer objs.Close()
	s, err := b.open(m, t.top)
	if err != nil {
		return c, err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	own, err := s.takeCollectors()
	if err != nil {
		return c, err
	}
	sets = append([]*collectorSet{own}, sets...)
	if err := b.warmUp(ctx, t, sets); err != nil {
		return c, err
	}
	for _, o := range orders {
		ord, err := b.order(ctx, t, sets, o)
		if err != nil {
			return c, err
		}
		c.Orders = append(c.Orders, ord)
		c.Cgrstat, c.Baseline, c.Floor = c.Cgrstat.add(ord.Cgrstat), c.Baseline.add(ord.Baseline), c.Floor.add(ord.Floor)
	}
	if err := c.check(); err != nil {
		return c, err
	}
	c.VsBaseline = c.Cgrstat.PerEvent() / c.Baseline.PerEvent()
	c.VsFloor = c.Cgrstat.PerEvent() / c.Floor.PerEvent()
	b.logf("%s: %d events, cgrstat %.0f ns, baseline %.0f ns, floor %.0f ns per event",
		m, c.Cgrstat.End.Runs, c.Cgrstat.PerEvent(), c.Baseline.PerEvent(), c.Floor.PerEvent())
	return c, nil
}

// order attaches the sets in order o and stresses the tree until its share
// of the wanted events was seen.
func (b *bench) order(ctx context.Context, t *tree, sets []*collectorSet, o [3]int) (Order, error) {
	var ord Order
	for _, i := range o {
		defer sets[i].detach()
		if err := sets[i].attach(); err != nil {
			return ord, err
		}
		ord.Order = append(ord.Order, sets[i].name)
	}
	before, err := costs(sets)
	if err != nil {
		return ord, err
	}
	now := before
	want := uint64(b.cfg.Events+len(orders)-1) / uint64(len(orders))
	for i := 0; i < maxBatches && now[0].End.Runs-before[0].End.Runs < want; i++ {
		if err := b.stress(ctx, t, 8<<20, 3); err != nil {
			return ord, err
		}
		if now, err = costs(sets); err != nil {
			return ord, err
		}
	}
	ord.Cgrstat, ord.Baseline, ord.Floor = now[0].sub(before[0]), now[1].sub(before[1]), now[2].sub(before[2])
	return ord, nil
}

// warmUp runs one batch with every set attached and discards it: the
// first events pay one-time costs (map entries and task storage created,
// and under QEMU's TCG the translation of code run for the first time),
// which would fall on the first order only.
func (b *bench) warmUp(ctx context.Context, t *tree, sets []*collectorSet) error {
	for _, s := range sets {
		defer s.detach()
		if err := s.attach(); err != nil {
			return err
		}
	}
	return b.stress(ctx, t, 8<<20, 3)
}

func costs(sets []*collectorSet) ([]Pair, error) {
	var out []Pair
	for _, s := range sets {
		p, err := s.cost()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// check fails loudly when the measurement cannot mean anything.
func (c Collectors) check() error {
	for name, p := range map[string]Pair{"cgrstat": c.Cgrstat, "baseline": c.Baseline, "floor": c.Floor} {
		if p.Begin.Runs == 0 || p.End.Runs == 0 {
			return fmt.Errorf("%s collectors saw no reclaim event (begin %d, end %d runs): does stress reclaim?",
				name, p.Begin.Runs, p.End.Runs)
		}
		if p.Begin.NS == 0 || p.End.NS == 0 {
			return errors.New("the kernel reports zero run time: BPF statistics are not being collected")
		}
	}
	if c.Cgrstat.End.Runs != c.Baseline.End.Runs || c.Cgrstat.End.Runs != c.Floor.End.Runs {
		return fmt.Errorf("the collector sets saw different events (cgrstat %d, baseline %d, floor %d)",
			c.Cgrstat.End.Runs, c.Baseline.End.Runs, c.Floor.End.Runs)
	}
	return nil
}

// stress induces reclaim rounds times in each stressed leaf, by one child each.
func (b *bench) stress(ctx context.Context, t *tree, size int64, rounds int) error {
	var jobs []stress.Job
	for _, l := range t.leaves {
		jobs = append(jobs, stress.Job{Cgroup: l, Size: size, Rounds: rounds})
	}
	_, err := stress.Run(ctx, b.h, jobs, stress.Options{Parallel: 2, ScratchDir: b.scratch, Exe: b.cfg.CLI})
	if err != nil {
		return fmt.Errorf("stress: %w", err)
	}
	return nil
}
