package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// maxBatches bounds the stress batches one order spends waiting for events.
const maxBatches = 40

// collectorTree is the size of the tree the collectors are measured on.
const collectorTree = 21

// rounds is how many times each set is measured alone, in turn: the
// sets take turns so that a slow spell of the machine falls on all.
const rounds = 3

// Turn is what one set measured attached alone, in one round.
type Turn struct {
	Set  string `json:"set"`
	Cost Pair   `json:"cost"`
}

// collectors measures cgrstat's collectors in mode m, the seed-style
// baseline and the empty floor, each attached alone in turn, on reclaim
// in a small tree; and cgrstat's once more as its load attached them, with
// nothing else on the tracepoints (Plain), which must agree with its
// figure within 20%. Sets attached together inflate each other: the first
// program on a tracepoint to touch task storage pays the cold caches, and
// each one's cache lines evict the others' (measured in BENCHMARKS.md).
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
	own := &collectorSet{name: "cgrstat", begin: s.progs[bpf.CgrstatProgVmscanStart], end: s.progs[bpf.CgrstatProgVmscanEnd]}
	// One batch first: the first events pay one-time costs (map entries and
	// task storage created; under TCG, code translated the first time).
	if err := b.stress(ctx, t, 8<<20, 3); err != nil {
		return c, err
	}
	want := uint64(b.cfg.Events+rounds-1) / uint64(rounds)
	if c.Plain, err = b.measure(ctx, t, own, want); err != nil {
		return c, err
	}
	if c.Traced, err = b.measureTraced(ctx, t, own, s.pinPath, want); err != nil {
		return c, err
	}
	if _, err := s.takeCollectors(); err != nil {
		return c, err
	}
	sets = append([]*collectorSet{own}, sets...)
	for r := 0; r < rounds; r++ {
		for k := range sets {
			set := sets[(r+k)%len(sets)]
			if err := set.attach(); err != nil {
				return c, err
			}
			p, err := b.measure(ctx, t, set, want)
			set.detach()
			if err != nil {
				return c, err
			}
			c.Turns = append(c.Turns, Turn{set.name, p})
			switch set.name {
			case "cgrstat":
				c.Cgrstat = c.Cgrstat.add(p)
			case "baseline":
				c.Baseline = c.Baseline.add(p)
			default:
				c.Floor = c.Floor.add(p)
			}
		}
	}
	if err := c.check(); err != nil {
		return c, err
	}
	c.VsBaseline = c.Cgrstat.PerEvent() / c.Baseline.PerEvent()
	c.VsFloor = c.Cgrstat.PerEvent() / c.Floor.PerEvent()
	c.PlainVsAlone = c.Plain.PerEvent() / c.Cgrstat.PerEvent()
	c.TracedVsBaseline = c.Traced.PerEvent() / c.Baseline.PerEvent()
	b.logf("%s: cgrstat %.0f ns (%d events; as loaded %.0f ns, %d), baseline %.0f ns, floor %.0f ns per event",
		m, c.Cgrstat.PerEvent(), c.Cgrstat.End.Runs, c.Plain.PerEvent(), c.Plain.End.Runs, c.Baseline.PerEvent(), c.Floor.PerEvent())
	return c, nil
}

// measure stresses the tree until set's end program ran want more times,
// and returns what its programs cost meanwhile.
func (b *bench) measure(ctx context.Context, t *tree, set *collectorSet, want uint64) (Pair, error) {
	before, err := set.cost()
	if err != nil {
		return Pair{}, err
	}
	now := before
	for i := 0; i < maxBatches && now.End.Runs-before.End.Runs < want; i++ {
		if err := b.stress(ctx, t, 8<<20, 3); err != nil {
			return Pair{}, err
		}
		if now, err = set.cost(); err != nil {
			return Pair{}, err
		}
	}
	return now.sub(before), nil
}

// TraceMin is cgrstat trace's default threshold (its --min).
const TraceMin = 10 * time.Millisecond

// measureTraced is measure while one reader of the load's event stream
// subscribes at TraceMin and drains what comes, as cgrstat trace does.
func (b *bench) measureTraced(ctx context.Context, t *tree, set *collectorSet, pinPath string, want uint64) (Pair, error) {
	r, err := readout.OpenEvents(pinPath, events.Options{Min: TraceMin})
	if err != nil {
		return Pair{}, fmt.Errorf("subscribing to the event stream: %w", err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			if _, err := r.Read(); err != nil {
				return // closed (below), or broken: the ring then only drops
			}
		}
	}()
	p, err := b.measure(ctx, t, set, want)
	err = errors.Join(err, r.Close())
	<-drained
	return p, err
}

// check fails loudly when the measurement cannot mean anything.
func (c Collectors) check() error {
	for name, p := range map[string]Pair{"cgrstat": c.Cgrstat, "baseline": c.Baseline, "floor": c.Floor, "cgrstat as loaded": c.Plain, "cgrstat traced": c.Traced} {
		if p.Begin.Runs == 0 || p.End.Runs == 0 {
			return fmt.Errorf("%s collectors saw no reclaim event (begin %d, end %d runs): does stress reclaim?",
				name, p.Begin.Runs, p.End.Runs)
		}
		if p.Begin.NS == 0 || p.End.NS == 0 {
			return errors.New("the kernel reports zero run time: BPF statistics are not being collected")
		}
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
