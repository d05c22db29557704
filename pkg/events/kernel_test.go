package events_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// The test binary is also a process these tests start: testenv.WriteIn's
// writer (see testenv.WriterMain), and
//
//	__events-hold PINPATH   open a reader of every reclaim, print its slot, wait
const holdCommand = "__events-hold"

func init() {
	testenv.WriterMain()
	if len(os.Args) == 3 && os.Args[1] == holdCommand {
		r, err := readout.OpenEvents(os.Args[2], events.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(r.Slot())
		time.Sleep(time.Hour)
	}
}

// drain reads r until it has been quiet for a while.
func drain(t *testing.T, r *readout.EventReader) []events.Event {
	t.Helper()
	var out []events.Event
	for {
		r.SetDeadline(time.Now().Add(500 * time.Millisecond))
		ev, err := r.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		out = append(out, ev)
	}
}

func open(t *testing.T, pinPath string, opts events.Options) *readout.EventReader {
	t.Helper()
	r, err := readout.OpenEvents(pinPath, opts)
	if err != nil {
		t.Fatalf("readout.OpenEvents(%+v): %v", opts, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestKernelEventsOfAWriter: two readers subscribed to a leaf's subtree
// while a known process writes page cache into the leaf under a low limit
// each get every reclaim: the writer's pid and comm, the leaf as its
// cgroup and as the target, cause max, durations above 0 and pages, and
// the events' durations, counts and pages sum to what the aggregate
// gained (the workload is quiet before the readers open and after they
// drain, so no reclaim straddles the window).
func TestKernelEventsOfAWriter(t *testing.T) {
	p, h := testenv.Shared(t, loader.Auto, 512)
	top, leaf := testenv.LimitedLeaf(t, h)
	leafID, err := cgroup.ID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	before, err := p.Subtree(leaf)
	if err != nil {
		t.Fatal(err)
	}
	readers := []*readout.EventReader{
		open(t, p.Path, events.Options{Cgroups: []uint64{leafID}, RateLimit: -1}),
		open(t, p.Path, events.Options{Cgroups: []uint64{mustID(t, top)}, RateLimit: -1, Stack: true}),
	}
	// Held until its events are checked: their TIDs are its threads.
	pid, comm, release := testenv.WriteAndHold(t, leaf, 48<<20)
	defer release()
	after, err := p.Subtree(leaf)
	if err != nil {
		t.Fatal(err)
	}
	grew, b := total(after[0]), total(before[0])
	for i := range grew {
		grew[i] -= b[i]
	}
	var seen [][]events.Event
	for i, r := range readers {
		evs := drain(t, r)
		var sum [3]uint64
		for _, ev := range evs {
			if ev.PID != pid || !testenv.ThreadOf(pid, ev.TID) || ev.Comm != comm || ev.Cgroup != leafID || ev.Target != leafID ||
				ev.Cause != "max" || ev.Duration <= 0 || ev.Time.IsZero() || time.Since(ev.Time) > time.Minute {
				t.Errorf("reader %d: event %+v; want pid %d (a thread of it as TID), comm %q, cgroup and target %d, cause max", i, ev, pid, comm, leafID)
			}
			if i == 1 && len(ev.Stack) == 0 {
				t.Errorf("reader %d asked for stacks: event %+v has none", i, ev)
			}
			sum[0] += uint64(ev.Duration)
			sum[1]++
			sum[2] += ev.Reclaimed
		}
		if sum != grew || sum[1] == 0 || sum[2] == 0 {
			t.Errorf("reader %d: %d events sum to delay %d ns, count %d, pages %d; the aggregate grew by %v",
				i, len(evs), sum[0], sum[1], sum[2], grew)
		}
		c, err := r.Counts()
		if err != nil || c.Sent != uint64(len(evs)) || c.Dropped() != 0 {
			t.Errorf("reader %d: counts %+v (%v) after %d events", i, c, err, len(evs))
		}
		seen = append(seen, evs)
		t.Logf("reader %d (slot %d): %d events, delay %d ns, pages %d", i, r.Slot(), sum[1], sum[0], sum[2])
	}
	if len(seen[0]) == len(seen[1]) {
		for j := range seen[0] {
			a, b := seen[0][j], seen[1][j]
			if a.Duration != b.Duration || a.Reclaimed != b.Reclaimed || a.CPU != b.CPU {
				t.Errorf("event %d differs between the readers: %+v and %+v", j, a, b)
			}
		}
	}
}

func mustID(t *testing.T, c cgroup.Cgroup) uint64 {
	t.Helper()
	id, err := cgroup.ID(c)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// total is a cgroup's every reclaim, every cause: delay, count, pages.
func total(s reclaim.Stat) [3]uint64 {
	var c reclaim.Counters
	for _, x := range s.Causes {
		c = c.Add(x)
	}
	return [3]uint64{c.DelayNS, c.Count, c.Reclaimed}
}

// TestKernelEventsRateLimit: a reader limited to 1 event per second with
// a burst of 2 gets at most 2 + 1 per second of a storm (slow emulated
// guests take seconds for it) and counts the rest as dropped by the rate
// limit; a reader without a limit on the same storm sees them all.
func TestKernelEventsRateLimit(t *testing.T) {
	p, h := testenv.Shared(t, loader.Auto, 512)
	_, leaf := testenv.LimitedLeaf(t, h)
	leafID := mustID(t, leaf)
	limited := open(t, p.Path, events.Options{Cgroups: []uint64{leafID}, RateLimit: 1, Burst: 2})
	all := open(t, p.Path, events.Options{Cgroups: []uint64{leafID}, RateLimit: -1})
	start := time.Now()
	testenv.WriteIn(t, leaf, 48<<20)
	elapsed := time.Since(start)
	got, want := drain(t, limited), drain(t, all)
	lc, err := limited.Counts()
	if err != nil {
		t.Fatal(err)
	}
	ac, err := all.Counts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("storm of %d reclaims in %s: limited reader got %d, counts %+v; unlimited %+v", len(want), elapsed, len(got), lc, ac)
	most := 2 + int(elapsed.Seconds()+1)
	if len(want) <= most {
		t.Fatalf("the storm had only %d reclaims: no test of a limit of %d", len(want), most)
	}
	if len(got) > most || len(got) == 0 {
		t.Errorf("limited reader got %d events in %s; want 1 to %d", len(got), elapsed, most)
	}
	if lc.Sent != uint64(len(got)) || lc.RateLimit != uint64(len(want)-len(got)) || lc.RingFull != 0 {
		t.Errorf("limited reader's counts %+v: want sent %d, rate-limited %d", lc, len(got), len(want)-len(got))
	}
	if ac.Dropped() != 0 || ac.Sent != uint64(len(want)) {
		t.Errorf("unlimited reader's counts %+v after %d events", ac, len(want))
	}
}

// TestKernelEventsThreshold: a threshold above every reclaim gets
// nothing, a reader of another subtree nothing, a reader of every cgroup
// the writer's reclaims; each with a slot of its own.
func TestKernelEventsThreshold(t *testing.T) {
	p, h := testenv.Shared(t, loader.Auto, 512)
	_, leaf := testenv.LimitedLeaf(t, h)
	leafID := mustID(t, leaf)
	slow := open(t, p.Path, events.Options{Min: time.Hour, Cgroups: []uint64{leafID}})
	other := open(t, p.Path, events.Options{Cgroups: []uint64{leafID + 1000000}, RateLimit: -1})
	every := open(t, p.Path, events.Options{RateLimit: -1})
	if slow.Slot() == other.Slot() || other.Slot() == every.Slot() || slow.Slot() == every.Slot() {
		t.Fatalf("two readers share a slot: %d, %d, %d", slow.Slot(), other.Slot(), every.Slot())
	}
	pid, _ := testenv.WriteIn(t, leaf, 24<<20)
	if evs := drain(t, slow); len(evs) != 0 {
		t.Errorf("a reader of reclaims above an hour got %d: %+v", len(evs), evs[0])
	}
	if evs := drain(t, other); len(evs) != 0 {
		t.Errorf("a reader of another subtree got %d: %+v", len(evs), evs[0])
	}
	mine := 0
	for _, ev := range drain(t, every) {
		if ev.PID == pid {
			mine++
		}
	}
	if mine == 0 {
		t.Error("a reader of every cgroup got none of the writer's events")
	}
}

// TestKernelEventsSlots: a killed reader's slot is taken back by the next
// reader, a closed reader's slot is free again, every slot taken refuses
// one more reader, and once all are closed the gate is shut (0): the
// collectors are back to one compare per reclaim.
func TestKernelEventsSlots(t *testing.T) {
	p, _ := testenv.Shared(t, loader.Auto, 512)
	holder := exec.Command(os.Args[0], holdCommand, p.Path)
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	var slot int
	if _, err := fmt.Fscan(out, &slot); err != nil {
		t.Fatalf("the holder said no slot: %v", err)
	}
	if gate(t, p) != 1 {
		t.Errorf("gate %d with a reader of every reclaim; want 1", gate(t, p))
	}
	if a := activeSlots(t, p); a != 1<<slot {
		t.Errorf("active slots %#x with one reader in slot %d; want %#x", a, slot, 1<<slot)
	}
	holder.Process.Kill()
	holder.Wait()
	first := open(t, p.Path, events.Options{Min: time.Millisecond})
	if first.Slot() != slot {
		t.Errorf("after the holder of slot %d was killed, a reader took slot %d", slot, first.Slot())
	}
	if g := gate(t, p); g != uint64(time.Millisecond)+1 {
		t.Errorf("gate %d with one reader of 1ms and up; want %d", g, time.Millisecond+1)
	}
	var rs []*readout.EventReader
	for {
		r, err := readout.OpenEvents(p.Path, events.Options{Min: time.Second})
		if errors.Is(err, events.ErrNoSlot) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
		if len(rs) > 64 {
			t.Fatal("more than 64 readers got a slot")
		}
	}
	t.Logf("%d slots", len(rs)+1)
	if a, want := activeSlots(t, p), uint64(1)<<(len(rs)+1)-1; a != want {
		t.Errorf("active slots %#x with every slot taken; want %#x", a, want)
	}
	s := rs[0].Slot()
	rs[0].Close()
	again := open(t, p.Path, events.Options{})
	if again.Slot() != s {
		t.Errorf("a new reader took slot %d, not the closed reader's %d", again.Slot(), s)
	}
	for _, r := range append(rs[1:], again, first) {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}
	if g := gate(t, p); g != 0 {
		t.Errorf("gate %d after every reader closed; want 0", g)
	}
	if a := activeSlots(t, p); a != 0 {
		t.Errorf("active slots %#x after every reader closed; want 0", a)
	}
}

// gate is trace_gate's threshold: the lowest of the active slots plus one.
func gate(t *testing.T, p *readout.Handle) uint64 { return gateValue(t, p, 0) }

// activeSlots is trace_gate's bits of the active slots, which the
// collectors visit once an event passes the gate.
func activeSlots(t *testing.T, p *readout.Handle) uint64 { return gateValue(t, p, 1) }

func gateValue(t *testing.T, p *readout.Handle, key uint32) uint64 {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(p.Dir.Map(bpf.CgrstatMapTraceGate), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var g uint64
	if err := m.Lookup(key, &g); err != nil {
		t.Fatal(err)
	}
	return g
}
