package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// idleReads is how many reads follow the reclaim rounds with nothing new.
const idleReads = 10

// reads times reads of the top's stat file: each right after reclaim in
// the stressed leaves, then with nothing to flush.
func (b *bench) reads(ctx context.Context, s *session, t *tree) (Read, error) {
	rd := Read{Mode: s.mode, N: t.n, Visited: 1}
	if s.mode == loader.Walk {
		rd.Visited = t.n // the iterator walks the whole subtree
	}
	// One untimed read first: the first run of freshly loaded programs pays
	// one-time costs (under TCG, the translation of their code).
	if _, err := reclaim.ReadFile(s.statFile); err != nil {
		return rd, err
	}
	flush, dump := s.flushProgram(), s.progs[bpf.CgrstatProgDump]
	var flush0 Cost
	var err error
	if flush != nil {
		if flush0, err = cost(flush); err != nil {
			return rd, err
		}
	}
	dump0, err := cost(dump)
	if err != nil {
		return rd, err
	}
	if err := b.afterReclaim(ctx, s, t, &rd); err != nil {
		return rd, err
	}
	for i := 0; i < idleReads; i++ {
		start := time.Now()
		if _, err := reclaim.ReadFile(s.statFile); err != nil {
			return rd, err
		}
		rd.IdleNS = append(rd.IdleNS, since(start))
	}
	rd.Reads = len(rd.AfterReclaimNS) + len(rd.IdleNS)
	if rd.Dump, err = cost(dump); err != nil {
		return rd, err
	}
	rd.Dump = rd.Dump.sub(dump0)
	if flush != nil {
		c, err := cost(flush)
		if err != nil {
			return rd, err
		}
		c = c.sub(flush0)
		rd.Flush = &c
	}
	return rd, nil
}

// afterReclaim runs the reclaim-then-read rounds. Each read must show more
// reclaims at the top than the one before: the numbers are checked, not
// just timed.
func (b *bench) afterReclaim(ctx context.Context, s *session, t *tree, rd *Read) error {
	var last reclaim.Stat
	for i := 0; i < b.cfg.Reps; i++ {
		if err := b.stress(ctx, t, 4<<20, 1); err != nil {
			return err
		}
		start := time.Now()
		st, err := reclaim.ReadFile(s.statFile)
		if err != nil {
			return err
		}
		rd.AfterReclaimNS = append(rd.AfterReclaimNS, since(start))
		if st.Count <= last.Count {
			return fmt.Errorf("the top's stat file shows %d reclaims after a round of reclaim, %d before: the flush did not reach the top", st.Count, last.Count)
		}
		last = st
	}
	return nil
}
