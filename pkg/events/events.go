// Package events streams slow reclaims from the collectors: one event per
// memory-cgroup or direct reclaim at or above a threshold, with the stalled
// task, its cgroup, the cgroup whose limit was enforced, the cause, the
// duration and the pages reclaimed. cgrstat trace prints them; serve and
// watch read them the same way.
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
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
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

// Flags of a slot and indexes of its drop counters, as in bpf/cgrstat.c.
const (
	flagStack = 1 // TRACE_STACK
	dropRate  = 0 // TRACE_DROP_RATE
	dropFull  = 1 // TRACE_DROP_FULL
)

// Causes by their number in the BPF object (enum cause); the names are
// those of the stat file and read's JSON.
var causes = []string{"max", "proactive", "direct", "high"}

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

// Reader is one subscriber.
type Reader struct {
	slot  uint32
	slots *ebpf.Map
	rings *ebpf.Map
	gate  *ebpf.Map
	ring  *ebpf.Map
	rd    *ringbuf.Reader
	dir   loader.PinDir
	stack bool
	// deadline is SetDeadline's: Read itself polls (see pollInterval).
	deadline time.Time

	once     sync.Once
	closeErr error
	mu       sync.Mutex // guards last
	last     Counts
}

// Open subscribes to the events of the load at pinPath.
func Open(pinPath string, opts Options) (*Reader, error) {
	slot, err := slotValue(opts)
	if err != nil {
		return nil, err
	}
	dir := loader.PinDir(pinPath)
	if _, err := dir.Record(); err != nil {
		return nil, err
	}
	r := &Reader{dir: dir, stack: opts.Stack}
	if err := r.openMaps(); err != nil {
		return nil, err
	}
	spec, err := bpf.LoadCgrstat()
	if err != nil {
		r.closeMaps()
		return nil, err
	}
	if r.ring, err = ebpf.NewMap(spec.Maps[bpf.CgrstatMapTraceRings].InnerMap); err != nil {
		r.closeMaps()
		return nil, fmt.Errorf("creating a ring buffer: %w", err)
	}
	if r.rd, err = ringbuf.NewReader(r.ring); err != nil {
		r.closeMaps()
		return nil, fmt.Errorf("reading the ring buffer: %w", err)
	}
	if err := r.claim(slot); err != nil {
		r.rd.Close()
		r.closeMaps()
		return nil, err
	}
	return r, nil
}

// slotValue is the slot a reader with opts asks for, not yet active.
func slotValue(opts Options) (bpf.CgrstatTraceSlot, error) {
	var s bpf.CgrstatTraceSlot
	if opts.Min < 0 {
		return s, fmt.Errorf("events: negative threshold %s", opts.Min)
	}
	if len(opts.Cgroups) > MaxCgroups {
		return s, fmt.Errorf("events: at most %d cgroups, not %d", MaxCgroups, len(opts.Cgroups))
	}
	s.MinNs = uint64(opts.Min)
	for i, id := range opts.Cgroups {
		if id == 0 {
			return s, errors.New("events: cgroup id 0")
		}
		s.Cgroups[i] = id
	}
	rate := opts.RateLimit
	if rate == 0 {
		rate = DefaultRateLimit
	}
	if rate > 0 {
		s.IntervalNs = max(1, uint64(math.Round(1e9/rate)))
		burst := opts.Burst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(rate)))
		}
		s.BurstNs = uint64(burst-1) * s.IntervalNs
	}
	if opts.Stack {
		s.Flags |= flagStack
	}
	pid, start, err := selfOwner()
	if err != nil {
		return s, err
	}
	s.OwnerPid, s.OwnerStart = uint32(pid), start
	return s, nil
}

// selfOwner is this process as cgroup.Self names it: pid and start time.
func selfOwner() (int, uint64, error) {
	pid, start, ok := strings.Cut(string(cgroup.Self()), "-")
	p, err1 := strconv.Atoi(pid)
	s, err2 := strconv.ParseUint(start, 10, 64)
	if !ok || err1 != nil || err2 != nil || s == 0 {
		return 0, 0, fmt.Errorf("events: cannot tell this process's start time (%q)", cgroup.Self())
	}
	return p, s, nil
}

func (r *Reader) openMaps() error {
	for name, m := range map[string]**ebpf.Map{bpf.CgrstatMapTraceSlots: &r.slots,
		bpf.CgrstatMapTraceRings: &r.rings, bpf.CgrstatMapTraceGate: &r.gate} {
		var err error
		if *m, err = ebpf.LoadPinnedMap(r.dir.Map(name), nil); err != nil {
			r.closeMaps()
			if errors.Is(err, os.ErrNotExist) {
				return ErrNoStream
			}
			return fmt.Errorf("opening pinned map %s: %w", name, err)
		}
	}
	return nil
}

func (r *Reader) closeMaps() {
	for _, m := range []*ebpf.Map{r.slots, r.rings, r.gate, r.ring} {
		if m != nil {
			m.Close()
		}
	}
}

// lockSlots serializes claims and releases of slots and the gate's
// updates among processes: an flock on the load's maps directory, held
// for a few map operations. The tree walk locks the pin path itself, so
// the two never wait for each other.
func (r *Reader) lockSlots() (unlock func(), err error) {
	fd, err := unix.Open(r.dir.Map(""), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("locking the event slots: %w", err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("locking the event slots: %w", err)
	}
	return func() { unix.Close(fd) }, nil
}

// claim takes a free slot (or one whose owner died), puts this reader's
// ring buffer in it, then activates it and lowers the gate if need be.
func (r *Reader) claim(want bpf.CgrstatTraceSlot) error {
	unlock, err := r.lockSlots()
	if err != nil {
		return err
	}
	defer unlock()
	free := -1
	for k := uint32(0); k < r.slots.MaxEntries(); k++ {
		var s bpf.CgrstatTraceSlot
		if err := r.slots.Lookup(k, &s); err != nil {
			return fmt.Errorf("reading event slot %d: %w", k, err)
		}
		if s.Active != 0 && ownerDead(s) {
			if err := r.clear(k); err != nil {
				return err
			}
			s.Active = 0
		}
		if s.Active == 0 && free < 0 {
			free = int(k)
		}
	}
	if free < 0 {
		return ErrNoSlot
	}
	r.slot = uint32(free)
	if err := r.rings.Put(r.slot, r.ring); err != nil {
		return fmt.Errorf("installing the ring buffer in slot %d: %w", r.slot, err)
	}
	want.Active = 1
	if err := r.slots.Put(r.slot, &want); err != nil {
		r.rings.Delete(r.slot)
		return fmt.Errorf("activating event slot %d: %w", r.slot, err)
	}
	if err := r.updateGate(); err != nil {
		r.clear(r.slot)
		r.updateGate()
		return err
	}
	return nil
}

// ownerDead reports whether the process that holds s is gone.
func ownerDead(s bpf.CgrstatTraceSlot) bool {
	return cgroup.Owner(fmt.Sprintf("%d-%d", s.OwnerPid, s.OwnerStart)).Dead()
}

// clear deactivates slot k and drops its ring buffer.
func (r *Reader) clear(k uint32) error {
	var zero bpf.CgrstatTraceSlot
	if err := r.slots.Put(k, &zero); err != nil {
		return fmt.Errorf("clearing event slot %d: %w", k, err)
	}
	if err := r.rings.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("removing the ring buffer of slot %d: %w", k, err)
	}
	return nil
}

// updateGate sets the gate to the lowest threshold of the active slots
// plus one, 0 when none is active (see trace_gate in bpf/cgrstat.c).
func (r *Reader) updateGate() error {
	gate := uint64(0)
	for k := uint32(0); k < r.slots.MaxEntries(); k++ {
		var s bpf.CgrstatTraceSlot
		if err := r.slots.Lookup(k, &s); err != nil {
			return fmt.Errorf("reading event slot %d: %w", k, err)
		}
		if s.Active != 0 && (gate == 0 || s.MinNs+1 < gate) {
			gate = s.MinNs + 1
		}
	}
	if err := r.gate.Put(uint32(0), gate); err != nil {
		return fmt.Errorf("setting the event gate: %w", err)
	}
	return nil
}

// Slot is the subscriber slot this reader holds.
func (r *Reader) Slot() int { return int(r.slot) }

// pollInterval is how often Read looks at the ring buffer: the BPF side
// wakes a reader only when its ring fills up (TRACE_WAKE_BYTES in
// bpf/cgrstat.c), since a wakeup per event costs the reclaiming task
// far more than the event itself. So an event reaches the reader within
// this time.
const pollInterval = 100 * time.Millisecond

// SetDeadline makes Read return os.ErrDeadlineExceeded once t has passed
// without an event (the zero time: wait for ever). Not while a Read runs.
func (r *Reader) SetDeadline(t time.Time) { r.deadline = t }

// Read waits for the next event. After Close it returns ErrClosed, after
// Stop ErrStopped.
func (r *Reader) Read() (Event, error) {
	for {
		next := time.Now().Add(pollInterval)
		if !r.deadline.IsZero() && r.deadline.Before(next) {
			next = r.deadline
		}
		r.rd.SetDeadline(next)
		rec, err := r.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if !r.deadline.IsZero() && !time.Now().Before(r.deadline) {
				return Event{}, err
			}
			continue
		}
		if errors.Is(err, ringbuf.ErrClosed) {
			return Event{}, ErrClosed
		}
		if errors.Is(err, ringbuf.ErrFlushed) {
			return Event{}, ErrStopped
		}
		if err != nil {
			return Event{}, err
		}
		ev, ok := decode(rec.RawSample)
		if ok {
			return ev, nil
		}
	}
}

// Stop ends the stream without losing what it holds: a Read waiting, or
// the next one, returns the events already in the ring buffer, then
// ErrStopped. The slot stays taken until Close.
func (r *Reader) Stop() error { return r.rd.Flush() }

// Counts reads the slot's counters; after Close, the last ones read.
func (r *Reader) Counts() (Counts, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.slots == nil {
		return r.last, nil
	}
	var s bpf.CgrstatTraceSlot
	if err := r.slots.Lookup(r.slot, &s); err != nil {
		return r.last, fmt.Errorf("reading event slot %d: %w", r.slot, err)
	}
	r.last = Counts{Sent: s.Sent, RateLimit: s.Dropped[dropRate], RingFull: s.Dropped[dropFull]}
	return r.last, nil
}

// Close releases the slot (its counters stay readable with Counts) and
// ends a Read in progress.
func (r *Reader) Close() error {
	r.once.Do(func() {
		_, err := r.Counts()
		unlock, lerr := r.lockSlots()
		if lerr == nil {
			var s bpf.CgrstatTraceSlot
			// Only a slot still ours: after an unload and a new load the maps are others'.
			if r.slots.Lookup(r.slot, &s) == nil && s.Active != 0 && s.OwnerPid == uint32(os.Getpid()) {
				err = errors.Join(err, r.clear(r.slot), r.updateGate())
			}
			unlock()
		}
		err = errors.Join(err, r.rd.Close())
		r.mu.Lock()
		r.closeMaps()
		r.slots = nil
		r.mu.Unlock()
		r.closeErr = err
	})
	return r.closeErr
}
