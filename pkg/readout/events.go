package readout

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
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// Flags of a slot and indexes of its drop counters, as in bpf/cgrstat.c.
const (
	flagStack = 1 // TRACE_STACK
	dropRate  = 0 // TRACE_DROP_RATE
	dropFull  = 1 // TRACE_DROP_FULL
)

// Causes by their number in the BPF object (enum cause); the names are
// those of the stat file and read's JSON.
var causes = []string{"max", "proactive", "direct", "high"}

// EventReader is one subscriber to the load's event stream (see package
// events): a slot with a ring buffer of its own.
type EventReader struct {
	slot  uint32
	slots *ebpf.Map
	rings *ebpf.Map
	gate  *ebpf.Map
	ring  *ebpf.Map
	rd    *ringbuf.Reader
	dir   loader.PinDir
	rec   *loader.Record // the load subscribed to
	stack bool
	// checked is when Read last made sure that the load is still rec's.
	checked time.Time
	// deadline is SetDeadline's: Read itself polls (see pollInterval).
	deadline time.Time

	once     sync.Once
	closeErr error
	mu       sync.Mutex // guards last
	last     events.Counts
}

// OpenEvents subscribes to the events of the load at pinPath.
func OpenEvents(pinPath string, opts events.Options) (*EventReader, error) {
	slot, err := slotValue(opts)
	if err != nil {
		return nil, err
	}
	dir := loader.PinDir(pinPath)
	rec, err := dir.Record()
	if err != nil {
		return nil, err
	}
	r := &EventReader{dir: dir, rec: rec, stack: opts.Stack, checked: time.Now()}
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
	if !r.current() { // unloaded, perhaps loaded again, while subscribing: the maps may be either load's
		r.Close()
		return nil, errors.New("events: the load changed while subscribing")
	}
	return r, nil
}

// loadCheck is how often a Read waiting for events makes sure that the
// load is still there: an unloaded load sends nothing, and its reader
// would otherwise wait for ever.
const loadCheck = time.Second

// current says whether the load at the pin path is still the one r
// subscribed to.
func (r *EventReader) current() bool {
	now, err := r.dir.Record()
	return err == nil && now.Same(r.rec)
}

// slotValue is the slot a reader with opts asks for, not yet active.
func slotValue(opts events.Options) (bpf.CgrstatTraceSlot, error) {
	var s bpf.CgrstatTraceSlot
	if opts.Min < 0 {
		return s, fmt.Errorf("events: negative threshold %s", opts.Min)
	}
	if len(opts.Cgroups) > events.MaxCgroups {
		return s, fmt.Errorf("events: at most %d cgroups, not %d", events.MaxCgroups, len(opts.Cgroups))
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
		rate = events.DefaultRateLimit
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

func (r *EventReader) openMaps() error {
	for name, m := range map[string]**ebpf.Map{bpf.CgrstatMapTraceSlots: &r.slots,
		bpf.CgrstatMapTraceRings: &r.rings, bpf.CgrstatMapTraceGate: &r.gate} {
		var err error
		if *m, err = ebpf.LoadPinnedMap(r.dir.Map(name), nil); err != nil {
			r.closeMaps()
			if errors.Is(err, os.ErrNotExist) {
				return events.ErrNoStream
			}
			return fmt.Errorf("opening pinned map %s: %w", name, err)
		}
	}
	return nil
}

func (r *EventReader) closeMaps() {
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
func (r *EventReader) lockSlots() (unlock func(), err error) {
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
func (r *EventReader) claim(want bpf.CgrstatTraceSlot) error {
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
		return events.ErrNoSlot
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
func (r *EventReader) clear(k uint32) error {
	var zero bpf.CgrstatTraceSlot
	if err := r.slots.Put(k, &zero); err != nil {
		return fmt.Errorf("clearing event slot %d: %w", k, err)
	}
	if err := r.rings.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("removing the ring buffer of slot %d: %w", k, err)
	}
	return nil
}

// trace_gate's keys (enum trace_gate_key in bpf/cgrstat.c).
const (
	traceGate   = 0 // the lowest threshold of the active slots plus one
	traceActive = 1 // a bit per active slot
)

// updateGate sets the gate to the lowest threshold of the active slots
// plus one, 0 when none is active, and the bits of the active slots (see
// trace_gate in bpf/cgrstat.c). The bits go first: an event that passes
// the new gate finds its slot's bit. A load made before the bits existed
// has only the gate.
func (r *EventReader) updateGate() error {
	gate, active := uint64(0), uint64(0)
	for k := uint32(0); k < r.slots.MaxEntries(); k++ {
		var s bpf.CgrstatTraceSlot
		if err := r.slots.Lookup(k, &s); err != nil {
			return fmt.Errorf("reading event slot %d: %w", k, err)
		}
		if s.Active != 0 {
			active |= 1 << k
		}
		if s.Active != 0 && (gate == 0 || s.MinNs+1 < gate) {
			gate = s.MinNs + 1
		}
	}
	if r.gate.MaxEntries() > traceActive {
		if err := r.gate.Put(uint32(traceActive), active); err != nil {
			return fmt.Errorf("setting the active event slots: %w", err)
		}
	}
	if err := r.gate.Put(uint32(traceGate), gate); err != nil {
		return fmt.Errorf("setting the event gate: %w", err)
	}
	return nil
}

// Slot is the subscriber slot this reader holds.
func (r *EventReader) Slot() int { return int(r.slot) }

// pollInterval is how often Read looks at the ring buffer: the BPF side
// wakes a reader only when its ring fills up (TRACE_WAKE_BYTES in
// bpf/cgrstat.c), since a wakeup per event costs the reclaiming task
// far more than the event itself. So an event reaches the reader within
// this time.
const pollInterval = 100 * time.Millisecond

// SetDeadline makes Read return os.ErrDeadlineExceeded once t has passed
// without an event (the zero time: wait for ever). Not while a Read runs.
func (r *EventReader) SetDeadline(t time.Time) { r.deadline = t }

// Read waits for the next event. After Close it returns events.ErrClosed,
// after Stop events.ErrStopped, once the load is gone events.ErrUnloaded.
func (r *EventReader) Read() (events.Event, error) {
	for {
		next := time.Now().Add(pollInterval)
		if !r.deadline.IsZero() && r.deadline.Before(next) {
			next = r.deadline
		}
		r.rd.SetDeadline(next)
		rec, err := r.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if !r.deadline.IsZero() && !time.Now().Before(r.deadline) {
				return events.Event{}, err
			}
			if time.Since(r.checked) >= loadCheck {
				r.checked = time.Now()
				if !r.current() {
					return events.Event{}, events.ErrUnloaded
				}
			}
			continue
		}
		if errors.Is(err, ringbuf.ErrClosed) {
			return events.Event{}, events.ErrClosed
		}
		if errors.Is(err, ringbuf.ErrFlushed) {
			return events.Event{}, events.ErrStopped
		}
		if err != nil {
			return events.Event{}, err
		}
		ev, ok := decode(rec.RawSample)
		if ok {
			return ev, nil
		}
	}
}

// Stop ends the stream without losing what it holds: a Read waiting, or
// the next one, returns the events already in the ring buffer, then
// events.ErrStopped. The slot stays taken until Close.
func (r *EventReader) Stop() error { return r.rd.Flush() }

// events.Counts reads the slot's counters; after Close, the last ones read.
func (r *EventReader) Counts() (events.Counts, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.slots == nil {
		return r.last, nil
	}
	var s bpf.CgrstatTraceSlot
	if err := r.slots.Lookup(r.slot, &s); err != nil {
		return r.last, fmt.Errorf("reading event slot %d: %w", r.slot, err)
	}
	r.last = events.Counts{Sent: s.Sent, RateLimit: s.Dropped[dropRate], RingFull: s.Dropped[dropFull]}
	return r.last, nil
}

// Close releases the slot (its counters stay readable with events.Counts) and
// ends a Read in progress.
func (r *EventReader) Close() error {
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

// Subscriber is a reader of the event stream, as status shows it: an
// active slot.
type Subscriber struct {
	Slot uint32 `json:"slot"`
	PID  uint32 `json:"pid"`
	// Command is the process's name (/proc/PID/comm), "" once it is gone.
	Command string `json:"command"`
	// Gone: the process ended without closing its slot (SIGKILL); the
	// next subscriber takes the slot back, until then the collectors
	// still write its events to a ring buffer nobody reads.
	Gone bool `json:"gone"`
	// MinNS is its threshold; Cgroups how many subtrees it asked for (0:
	// every cgroup).
	MinNS   uint64 `json:"min_ns"`
	Cgroups int    `json:"cgroups"`
	Stack   bool   `json:"stack"`
	// Events are those it was sent and those dropped for its rate limit
	// or because its ring buffer was full.
	Events events.Counts `json:"events"`
}

// Subscribers lists the readers of the event stream of the load at
// pinPath: none for a load older than the stream.
func Subscribers(pinPath string) ([]Subscriber, error) {
	m, err := ebpf.LoadPinnedMap(loader.PinDir(pinPath).Map(bpf.CgrstatMapTraceSlots), &ebpf.LoadPinOptions{ReadOnly: true})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening pinned map %s: %w", bpf.CgrstatMapTraceSlots, err)
	}
	defer m.Close()
	var out []Subscriber
	for k := uint32(0); k < m.MaxEntries(); k++ {
		var s bpf.CgrstatTraceSlot
		if err := m.Lookup(k, &s); err != nil {
			return nil, fmt.Errorf("reading event slot %d: %w", k, err)
		}
		if s.Active == 0 {
			continue
		}
		sub := Subscriber{Slot: k, PID: s.OwnerPid, Gone: ownerDead(s), MinNS: s.MinNs, Stack: s.Flags&flagStack != 0,
			Events: events.Counts{Sent: s.Sent, RateLimit: s.Dropped[dropRate], RingFull: s.Dropped[dropFull]}}
		for _, id := range s.Cgroups {
			if id != 0 {
				sub.Cgroups++
			}
		}
		if !sub.Gone {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.OwnerPid))
			sub.Command = strings.TrimSuffix(string(comm), "\n")
		}
		out = append(out, sub)
	}
	return out, nil
}
