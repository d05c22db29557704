package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// maxBatches bounds the workload's runs one measurement spends waiting for events.
const maxBatches = 40

// collectorTree is the size of the tree the collectors are measured on.
const collectorTree = 21

// rounds is how many times each set is measured alone, in turn: the
// sets take turns so that a slow spell of the machine falls on all.
const rounds = 3

// Turn is what one set measured attached alone, in one round: plainly,
// for the figure, and on the stress workload (see Collectors).
type Turn struct {
	Set       string `json:"set"`
	Plain     Pair   `json:"plain"`
	Cost      Pair   `json:"cost"`
	Contended Pair   `json:"contended"`
}

// plainEvents is how many events the plain check of a set counts, from
// the moment the set is attached: as many as the plain
// measurement (about 630), or the figure's per turn if -events asks for
// fewer (an emulated lab guest took 300 s for -events 300 with 630). At 210 the slow first events after an attach
// (the baseline's task-storage creations: 300-400 ns per begin against
// 150) put the baseline's check 24% off in one of three runs.
const plainEvents = 630

// collectors measures cgrstat's collectors in mode m, the seed-style
// baseline and the empty floor, each attached alone in turn, rounds rounds
// with the start rotating, on the plain workload (plainRun). A turn first
// measures the set plainly, as the issue measured it by hand: attached
// alone, statistics read at the attach and after plainEvents events,
// nothing left out. Then, for the figure, it runs until want more events: the
// plain runs were its warm-up (the first events after an attach pay
// one-time costs: map entries and task storage created, code and data
// cold; under TCG, code translated the first time). The figure must agree
// with the plain measurement within 20%; measured in the same turn, both
// see the same machine. Last, a stress batch (Contended). cgrstat is also
// measured as its own load attached it (AsLoaded) and while a trace
// subscribes (Traced). Sets attached together inflate each other: the
// first program on a tracepoint to touch task storage pays the cold
// caches, and each one's cache lines evict the others' (measured in
// BENCHMARKS.md).
func (b *bench) collectors(ctx context.Context, m loader.Mode) (c Collectors, err error) {
	c.Mode = m
	c.Plain = map[string]Pair{}
	c.Contended = map[string]Pair{}
	t, err := buildTree(ctx, b.h, b.root.Child("collectors"), collectorTree)
	defer func() { err = errors.Join(err, t.destroy()) }()
	if err != nil {
		return c, err
	}
	file, err := plainFile(b.scratch)
	if err != nil {
		return c, err
	}
	defer os.Remove(file)
	leaf := t.leaves[0]
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
	run := func() error { return b.plainRun(ctx, leaf, file) }
	want := uint64(b.cfg.Events+rounds-1) / uint64(rounds)
	if c.AsLoaded, err = b.measure(own, min(plainEvents, want), run); err != nil {
		return c, err
	}
	if c.Traced, err = b.measureTraced(own, s.pinPath, want, run); err != nil {
		return c, err
	}
	if _, err := s.takeCollectors(); err != nil {
		return c, err
	}
	sets = append([]*collectorSet{own}, sets...)
	for r := 0; r < rounds; r++ {
		for k := range sets {
			set := sets[(r+k)%len(sets)]
			turn, err := b.turn(ctx, t, set, want, run)
			if err != nil {
				return c, err
			}
			c.Turns = append(c.Turns, turn)
			c.Plain[set.name] = c.Plain[set.name].add(turn.Plain)
			c.Contended[set.name] = c.Contended[set.name].add(turn.Contended)
			switch set.name {
			case "cgrstat":
				c.Cgrstat = c.Cgrstat.add(turn.Cost)
			case "baseline":
				c.Baseline = c.Baseline.add(turn.Cost)
			default:
				c.Floor = c.Floor.add(turn.Cost)
			}
		}
	}
	if err := c.check(); err != nil {
		return c, err
	}
	c.VsBaseline = c.Cgrstat.PerEvent() / c.Baseline.PerEvent()
	c.VsFloor = c.Cgrstat.PerEvent() / c.Floor.PerEvent()
	c.TracedVsBaseline = c.Traced.PerEvent() / c.Baseline.PerEvent()
	c.VsPlain = map[string]float64{}
	for name, p := range map[string]Pair{"cgrstat": c.Cgrstat, "baseline": c.Baseline, "floor": c.Floor} {
		c.VsPlain[name] = p.PerEvent() / c.Plain[name].PerEvent()
	}
	b.logf("%s: cgrstat %.0f ns (%d events; plainly %.0f ns), baseline %.0f ns (plainly %.0f), floor %.0f ns (plainly %.0f) per event",
		m, c.Cgrstat.PerEvent(), c.Cgrstat.End.Runs, c.Plain["cgrstat"].PerEvent(), c.Baseline.PerEvent(), c.Plain["baseline"].PerEvent(),
		c.Floor.PerEvent(), c.Plain["floor"].PerEvent())
	return c, nil
}

// turn attaches set alone; measures it plainly (plainEvents events of the
// plain workload from the attach, all counted), then for the figure
// (until want more events), then on a stress batch (contended); and
// detaches it. The plain runs are the figure's warm-up.
func (b *bench) turn(ctx context.Context, t *tree, set *collectorSet, want uint64, run func() error) (turn Turn, err error) {
	turn.Set = set.name
	if err := set.attach(); err != nil {
		return turn, err
	}
	defer set.detach()
	if turn.Plain, err = b.measure(set, min(plainEvents, want), run); err != nil {
		return turn, err
	}
	if turn.Cost, err = b.measure(set, want, run); err != nil {
		return turn, err
	}
	turn.Contended, err = b.measureRuns(set, 1, func() error { return b.stress(ctx, t, 8<<20, 3) })
	return turn, err
}

// measureRuns returns what set's programs cost over n calls of run.
func (b *bench) measureRuns(set *collectorSet, n int, run func() error) (Pair, error) {
	before, err := set.cost()
	if err != nil {
		return Pair{}, err
	}
	for i := 0; i < n; i++ {
		if err := run(); err != nil {
			return Pair{}, err
		}
	}
	now, err := set.cost()
	return now.sub(before), err
}

// measure calls run until set's end program ran want more times, and
// returns what its programs cost meanwhile.
func (b *bench) measure(set *collectorSet, want uint64, run func() error) (Pair, error) {
	before, err := set.cost()
	if err != nil {
		return Pair{}, err
	}
	now := before
	for i := 0; i < maxBatches && now.End.Runs-before.End.Runs < want; i++ {
		if err := run(); err != nil {
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
func (b *bench) measureTraced(set *collectorSet, pinPath string, want uint64, run func() error) (Pair, error) {
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
	p, err := b.measure(set, want, run)
	err = errors.Join(err, r.Close())
	<-drained
	return p, err
}

// check fails loudly when the measurement cannot mean anything.
func (c Collectors) check() error {
	for name, p := range map[string]Pair{"cgrstat": c.Cgrstat, "baseline": c.Baseline, "floor": c.Floor, "cgrstat as loaded": c.AsLoaded, "cgrstat traced": c.Traced} {
		if p.Begin.Runs == 0 || p.End.Runs == 0 {
			return fmt.Errorf("%s collectors saw no reclaim event (begin %d, end %d runs): does the plain workload reclaim?",
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
