// Package events streams slow reclaims from the collectors: one event per
// memory-cgroup or direct reclaim at or above a threshold, with the stalled
// task, its cgroup, the cgroup whose limit was enforced, the cause, the
// duration and the pages reclaimed. cgrstat trace prints them; serve and
// watch read them the same way.
//
// This package holds what an event and a reader's options are;
// readout.OpenEvents reads them from a load (the one read side).
//
// Each reader holds one of the load's subscriber slots (bpf/cgrstat.c,
// trace_slots), with a ring buffer of its own, so every reader sees every
// event it asked for, whoever else reads. The threshold, the cgroup
// subtrees and the rate limit are decided in BPF. A slot names its owner
// (pid and start time): a slot whose owner died without closing (kill -9)
// is taken back by the next Open, which also recomputes the gate that
// keeps the collectors' cost at one compare while nobody reads.
package events

import (
	"errors"
	"time"

	"github.com/cgrstat/cgrstat/bpf"
)

// Limits of the BPF side (TRACE_CGROUPS and TRACE_STACK_DEPTH in
// bpf/cgrstat.c); the number of slots is the size of its trace_slots map.
const (
	MaxCgroups    = len(bpf.CgrstatTraceSlot{}.Cgroups)
	MaxStackDepth = len(bpf.CgrstatTraceEvent{}.Stack)
)

// DefaultRateLimit is the events per second a reader gets unless it asks
// otherwise: enough to see a storm's shape, few enough that a storm costs
// the collectors little and the reader less.
const DefaultRateLimit = 1000

var (
	// ErrNoSlot: every subscriber slot is held by a running reader.
	ErrNoSlot = errors.New("every event subscriber slot is taken by a running reader (cgrstat trace, serve or watch)")
	// ErrNoStream: the load predates the event stream.
	ErrNoStream = errors.New("the load has no event stream (loaded by an older cgrstat): unload it and load again")
	// ErrClosed is what Read returns once the reader is closed.
	ErrClosed = errors.New("event reader closed")
	// ErrStopped is what Read returns after Stop, once the events that
	// were in the ring buffer are read.
	ErrStopped = errors.New("event reader stopped")
	// ErrUnloaded is what Read returns once the load it subscribed to is
	// gone (cgrstat unload, perhaps a load again since): no more events
	// can come from it.
	ErrUnloaded = errors.New("the collectors were unloaded: no more reclaims can be seen")
)

// Options say which events a reader gets.
type Options struct {
	// Min is the shortest reclaim reported; 0 reports every one.
	Min time.Duration
	// Cgroups limits events to tasks in these cgroups' subtrees, by id
	// (cgroup.ID); empty: every cgroup. At most MaxCgroups.
	Cgroups []uint64
	// RateLimit is the most events per second: 0 takes DefaultRateLimit,
	// a negative value sets no limit.
	RateLimit float64
	// Burst is how many events may come at once above the rate: 0 takes
	// one second's worth.
	Burst int
	// Stack asks for the kernel stack of each event.
	Stack bool
}

// Event is one reclaim.
type Event struct {
	Time      time.Time     // when it ended (wall clock)
	Duration  time.Duration // how long the task stalled in it
	PID, TID  int
	Comm      string // raw, from the kernel: escape before printing
	Cgroup    uint64 // id of the stalled task's memory cgroup
	Target    uint64 // id of the cgroup whose limit was enforced; 0 for global direct reclaim
	Cause     string // max, high, proactive or direct
	Reclaimed uint64 // pages
	CPU       int
	Stack     []uint64 // kernel addresses, innermost first; only with Options.Stack
}

// Counts are what the reader's slot let through and what it dropped, and why.
type Counts struct {
	Sent      uint64 `json:"sent"`
	RateLimit uint64 `json:"rate_limit"` // over the rate limit
	RingFull  uint64 `json:"ring_full"`  // the ring buffer was full: the reader fell behind
}

// Dropped is the sum of the drops.
func (c Counts) Dropped() uint64 { return c.RateLimit + c.RingFull }
