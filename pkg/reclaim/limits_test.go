package reclaim_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// limitsFile is what the page-cache writer writes (and reads back) in each
// leaf: six times its 8 MiB limit, as KERNEL-LAB.md's measurement on 7.3.4
// did.
const limitsFile = 48 << 20

// TestKernelMaxAndHigh: a leaf with only memory.high and a page-cache
// writer reclaims under cause high and never max; a leaf with only
// memory.max the opposite. Each memory.events high or max event is
// followed by one reclaim of that leaf (reclaim_high, try_charge_memcg),
// so the leaf's forced count equals the growth of its event (max: but for
// charges that may not block, see below); its own
// count may be lower where a kworker did the high reclaim (high_work_func
// runs in the root cgroup). Both loads (walk, and the best mode) see the
// same, through read --all's copy of the map and through the stat file.
// The files are on TMPDIR: the lab's ext4 scratch disk, so that reclaim
// frees pages (tmpfs pages cannot go without swap).
func TestKernelMaxAndHigh(t *testing.T) {
	h := testenv.Hierarchy(t)
	if h.Version != 2 {
		// v1 has no memory.high: every charge-time reclaim is max
		// (TestKernelCausesAndForced checks that on v1).
		t.Skip("memory.high is cgroup v2's: on v1 every charge-time reclaim is max")
	}
	loads := twoLoads(t)
	top := testenv.Cgroups(t, h, "hi", "mx", "park")
	enableMemory(t, h, top)
	hi, mx := top.Child("hi"), top.Child("mx")
	for _, l := range []struct {
		c    cgroup.Cgroup
		file string
	}{{hi, "memory.high"}, {mx, "memory.max"}} {
		if err := l.c.Write(l.file, strconv.Itoa(8<<20)); err != nil {
			t.Fatal(err)
		}
	}
	hp := startHelper(t, h, top.Child("park"))
	grew := map[string]map[string]uint64{}
	for _, c := range []cgroup.Cgroup{hi, mx} {
		before := memoryEvents(t, c)
		file := filepath.Join(os.TempDir(), testenv.Name(t)+"-"+filepath.Base(c.Rel))
		t.Cleanup(func() { os.Remove(file) }) // before the cgroup goes: its pages are charged there
		for _, cmd := range [][]string{{"join", c.Path}, {"fillsync", file, strconv.Itoa(limitsFile)}, {"join", top.Child("park").Path}} {
			if err := hp.do(cmd...); err != nil {
				t.Fatalf("%v: %v", cmd, err)
			}
		}
		after := memoryEvents(t, c)
		grew[c.Rel] = map[string]uint64{}
		for k, v := range after {
			grew[c.Rel][k] = v - before[k]
		}
		t.Logf("%s: memory.events grew by %v", c.Rel, grew[c.Rel])
	}

	// Reading memory.pressure folds the kernel's per-CPU stall times into
	// the totals the tree walk then reads: with no task left in the
	// leaves, both must say the same.
	pressure := map[string]uint64{}
	for _, c := range []cgroup.Cgroup{hi, mx} {
		pressure[c.Rel] = someTotalUS(t, c)
	}
	after := map[string]map[string]uint64{hi.Rel: memoryEvents(t, hi), mx.Rel: memoryEvents(t, mx)}

	for i, p := range loads {
		all, err := p.Subtree(top)
		if err != nil {
			t.Fatal(err)
		}
		s := map[string]reclaim.Stat{}
		for _, st := range all {
			s[st.Path] = st
		}
		hs, ms, ts := s[hi.Rel], s[mx.Rel], s[top.Rel]
		for _, c := range []struct {
			cg         cgroup.Cgroup
			st         reclaim.Stat
			cause      reclaim.Cause
			other      reclaim.Cause
			event      string
			otherEvent string
		}{{hi, hs, reclaim.High, reclaim.Max, "high", "max"}, {mx, ms, reclaim.Max, reclaim.High, "max", "high"}} {
			got, events := c.st.Causes[c.cause].Count, grew[c.st.Path][c.event]
			t.Logf("load %d: %s: %s %d reclaims (%d ns, %d pages), %s %d; forced %d; memory.events %s +%d, %s +%d",
				i, c.st.Path, c.cause, got, c.st.Causes[c.cause].DelayNS, c.st.Causes[c.cause].Reclaimed,
				c.other, c.st.Causes[c.other].Count, c.st.Forced.Count, c.event, events, c.otherEvent, grew[c.st.Path][c.otherEvent])
			if got == 0 || c.st.Causes[c.other].Count != 0 || c.st.Causes[reclaim.Proactive].Count != 0 {
				t.Errorf("load %d: %s: %s %d, %s %d, proactive %d; want %s > 0 and no other", i, c.st.Path,
					c.cause, got, c.other, c.st.Causes[c.other].Count, c.st.Causes[reclaim.Proactive].Count, c.cause)
			}
			// A charge that may not block (GFP_NOWAIT, atomic) raises a max
			// event and fails at once, without reclaim (try_charge_memcg's
			// nomem path): measured, 354 events and 353 reclaims on 6.12,
			// equal on 7.2. reclaim_high always reclaims after its event.
			slack := uint64(0)
			if c.cause == reclaim.Max {
				slack = max(2, events/50)
			}
			if f := c.st.Forced.Count; f > events || events-f > slack || got > f {
				t.Errorf("load %d: %s: forced %d, %s %d; want forced = memory.events %s growth %d (%d less at most), and %s at most forced",
					i, c.st.Path, f, c.cause, got, c.event, events, slack, c.cause)
			}
			if g := grew[c.st.Path][c.otherEvent]; g != 0 {
				t.Errorf("%s: memory.events %s grew by %d: the test's limits did not work as meant", c.st.Path, c.otherEvent, g)
			}
			// The kernel's own figures, read in the tree walk.
			e, file := c.st.Events, after[c.st.Path]
			if !e.Read || e.High != file["high"] || e.Max != file["max"] || e.OOM != file["oom"] || e.OOMKill != file["oom_kill"] {
				t.Errorf("load %d: %s: events %+v, memory.events %v", i, c.st.Path, e, file)
			}
			pr, us := c.st.Pressure, pressure[c.st.Path]
			t.Logf("load %d: %s: pressure some %d ns, full %d ns; memory.pressure some total=%d us", i, c.st.Path, pr.SomeNS, pr.FullNS, us)
			if !pr.Read || pr.SomeNS/1000 < us || pr.SomeNS/1000-us > 2e6 {
				t.Errorf("load %d: %s: pressure %+v, memory.pressure some total %d us: want them within one fold (2 s)", i, c.st.Path, pr, us)
			}
			if c.cause == reclaim.High && us == 0 {
				t.Errorf("%s: memory.pressure some total 0 after high reclaim", c.st.Path)
			}
			assertOneAgrees(t, p, c.cg, c.st)
			// The stat file says the same (print_stat's max and high lines).
			f, err := p.ReadOne(c.cg)
			if err != nil {
				t.Fatal(err)
			}
			if f.Causes != c.st.Causes || *f.Dists()[0].Hist != *c.st.Dists()[0].Hist {
				t.Errorf("load %d: %s: stat file causes %+v, read --all %+v", i, c.st.Path, f.Causes, c.st.Causes)
			}
			if !f.Throttle.Equal(c.st.Throttle) {
				t.Errorf("load %d: %s: stat file throttle %+v, read --all %+v", i, c.st.Path, f.Throttle, c.st.Throttle)
			}
		}
		var sum reclaim.Stat
		sum.Add(&hs)
		sum.Add(&ms)
		if ts.Causes != sum.Causes || *ts.Dists()[0].Hist != *sum.Dists()[0].Hist || ts.Forced != sum.Forced {
			t.Errorf("load %d: %s: causes %+v, forced %+v; its children's sum %+v, %+v", i, ts.Path, ts.Causes, ts.Forced, sum.Causes, sum.Forced)
		}
		// The throttle after memory.high, where measured: in the high
		// leaf only (a page-cache writer's usage mostly goes back under
		// high, so it may be 0), its count its histogram's sum, the top
		// its children's sum bucket by bucket.
		for _, st := range []reclaim.Stat{hs, ms, ts} {
			throttleAgrees(t, p, st)
		}
		t.Logf("load %d: %s: throttle %d sleeps, %d ns", i, hs.Path, hs.Throttle.Count, hs.Throttle.DelayNS)
		if ms.Throttle.Count != 0 || !ts.Throttle.Equal(sum.Throttle) {
			t.Errorf("load %d: throttle: %s %+v, %s %+v, %s %+v; want none in the max leaf, the top the sum of its children",
				i, hs.Path, hs.Throttle, ms.Path, ms.Throttle, ts.Path, ts.Throttle)
		}
	}
	for _, p := range loads {
		assertNothingLostBut(t, p)
	}
}

// throttleAgrees checks st's throttle where the load measures it (every
// lab kernel): its count is its histogram's sum, each sleep at least 1 ms.
func throttleAgrees(t *testing.T, p *readout.Handle, st reclaim.Stat) {
	t.Helper()
	th := st.Throttle
	if th.Measured != p.Record.Throttle || testenv.Required() && !th.Measured {
		t.Errorf("%s: throttle measured %v, the load says %v (%s)", st.Path, th.Measured, p.Record.Throttle, p.Record.ThrottleRefused)
	}
	var n uint64
	if th.Hist != nil {
		n = th.Hist.Total()
	}
	if n != th.Count || (th.Count == 0) != (th.Hist == nil) || th.DelayNS < th.Count*1e6 {
		t.Errorf("%s: throttle %d sleeps, %d ns, its histogram %d: want the histogram's sum, 1 ms a sleep at least", st.Path, th.Count, th.DelayNS, n)
	}
}

// someTotalUS reads memory.pressure's "some ... total=N" (µs).
func someTotalUS(t *testing.T, c cgroup.Cgroup) uint64 {
	t.Helper()
	text, err := c.Read("memory.pressure")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "some ") {
			continue
		}
		_, v, ok := strings.Cut(line, "total=")
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if !ok || err != nil {
			t.Fatalf("memory.pressure of %s: %q", c.Rel, line)
		}
		return n
	}
	t.Fatalf("memory.pressure of %s has no some line: %q", c.Rel, text)
	return 0
}

// memoryEvents reads a cgroup v2 memory.events file.
func memoryEvents(t *testing.T, c cgroup.Cgroup) map[string]uint64 {
	t.Helper()
	text, err := c.Read("memory.events")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		k, v, ok := strings.Cut(line, " ")
		n, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("memory.events of %s: line %q", c.Rel, line)
		}
		out[k] = n
	}
	return out
}
