package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/cgrstat/cgrstat/pkg/stress"
)

// maxBatches bounds the stress batches spent waiting for Events events.
const maxBatches = 40

// collectors stresses the tree's leaves until enough reclaim events were
// seen, and compares what the three collector pairs spent on them.
func (b *bench) collectors(ctx context.Context, s *session, ref *reference, t *tree) (Collectors, error) {
	c := Collectors{Mode: s.mode}
	before, err := ref.snapshot(s)
	if err != nil {
		return c, err
	}
	var now snapshot
	for i := 0; i < maxBatches; i++ {
		if err := b.stress(ctx, t, 8<<20); err != nil {
			return c, err
		}
		if now, err = ref.snapshot(s); err != nil {
			return c, err
		}
		if now.cgrstat.End.Runs-before.cgrstat.End.Runs >= uint64(b.cfg.Events) {
			break
		}
	}
	c.Cgrstat, c.Baseline, c.Floor = now.cgrstat.sub(before.cgrstat), now.baseline.sub(before.baseline), now.floor.sub(before.floor)
	if err := c.check(); err != nil {
		return c, err
	}
	c.VsBaseline = c.Cgrstat.PerEvent() / c.Baseline.PerEvent()
	c.VsFloor = c.Cgrstat.PerEvent() / c.Floor.PerEvent()
	b.logf("%s: %d events, cgrstat %.0f ns, baseline %.0f ns, floor %.0f ns per event",
		s.mode, c.Cgrstat.End.Runs, c.Cgrstat.PerEvent(), c.Baseline.PerEvent(), c.Floor.PerEvent())
	return c, nil
}

// check fails loudly when the measurement cannot mean anything.
func (c Collectors) check() error {
	for name, p := range map[string]Pair{"cgrstat": c.Cgrstat, "baseline": c.Baseline, "floor": c.Floor} {
		if p.Begin.Runs == 0 || p.End.Runs == 0 {
			return fmt.Errorf("%s collectors saw no reclaim event (begin %d, end %d runs): is bpf_stats on and does stress reclaim?",
				name, p.Begin.Runs, p.End.Runs)
		}
		if p.Begin.NS == 0 || p.End.NS == 0 {
			return errors.New("the kernel reports zero run time: BPF statistics are not being collected")
		}
	}
	return nil
}

// stress induces reclaim once in each stressed leaf.
func (b *bench) stress(ctx context.Context, t *tree, size int64) error {
	var jobs []stress.Job
	for _, l := range t.leaves {
		jobs = append(jobs, stress.Job{Cgroup: l, Size: size, Rounds: 1})
	}
	_, err := stress.Run(ctx, b.h, jobs, stress.Options{Parallel: 2, ScratchDir: b.scratch, Exe: b.cfg.CLI})
	if err != nil {
		return fmt.Errorf("stress: %w", err)
	}
	return nil
}
