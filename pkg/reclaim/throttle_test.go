package reclaim_test

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// anon touches n bytes of anonymous memory page by page, then frees them:
// with no swap, reclaim cannot take them, so a cgroup's memory.high below
// its usage stays exceeded and the kernel throttles the task.
func anon(n int) error {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	for i := 0; i < n; i += os.Getpagesize() {
		b[i] = 1
	}
	return syscall.Munmap(b)
}

// TestKernelThrottle: a task that stays above memory.high after reclaim
// sleeps in mem_cgroup_handle_over_high; cgrstat counts that time in the
// task's cgroup and its ancestors, apart from the reclaim, where the
// kernel lets fentry/fexit attach. Where it does not (this development
// host), every reader says so instead of printing 0.
func TestKernelThrottle(t *testing.T) {
	p, h := sharedLoad(t, loader.Auto)
	top := testenv.Cgroups(t, h, "th", "park")
	st, err := p.ReadOne(top)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	t.Logf("flush mode %s, throttle measured %v (%s)", p.Record.Flush, p.Record.Throttle, p.Record.ThrottleRefused)
	if !p.Record.Throttle {
		if testenv.Required() {
			// Every lab kernel runs fentry (its flush mode there).
			t.Fatalf("the throttle is not measured: %s", p.Record.ThrottleRefused)
		}
		if p.Record.ThrottleRefused == "" || st.Throttle.Measured || !strings.Contains(string(b), `"throttle":"unavailable"`) {
			t.Errorf("unmeasured throttle: refused %q, stat file %+v, JSON %s; want a reason, unavailable", p.Record.ThrottleRefused, st.Throttle, b)
		}
		all, err := p.Subtree(top)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			if s.Throttle.Measured {
				t.Errorf("%s: read --all says the throttle is measured", s.Path)
			}
		}
		return
	}
	if !st.Throttle.Measured || !strings.Contains(string(b), `"throttle":{"delay_ns":`) {
		t.Errorf("measured throttle: stat file %+v, JSON %s", st.Throttle, b)
	}
	if h.Version != 2 {
		t.Skip("memory.high is cgroup v2's: nothing to throttle on v1 (the throttle's programs loaded and attached)")
	}
	enableMemory(t, h, top)
	th := top.Child("th")
	const high = 16 << 20
	if err := th.Write("memory.high", strconv.Itoa(high)); err != nil {
		t.Fatal(err)
	}
	hp := startHelper(t, h, top.Child("park"))
	if err := hp.do("join", th.Path); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// A sixteenth over high: a penalty of about a quarter second per
	// charge batch over (calculate_high_delay), a few seconds in all.
	if err := hp.do("anon", strconv.Itoa(high+high/16)); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	if err := hp.do("join", top.Child("park").Path); err != nil {
		t.Fatal(err)
	}
	leaf, err := p.ReadOne(th)
	if err != nil {
		t.Fatal(err)
	}
	all, err := p.Subtree(top)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]reclaim.Stat{}
	for _, s := range all {
		byPath[s.Path] = s
	}
	t.Logf("%s: throttled %d times, %d ns (wall %s); high reclaim %d, %d ns; memory.events %v",
		th.Rel, leaf.Throttle.Count, leaf.Throttle.DelayNS, wall, leaf.Causes[reclaim.High].Count, leaf.Causes[reclaim.High].DelayNS, memoryEvents(t, th))
	if leaf.Throttle.DelayNS == 0 || leaf.Throttle.Count == 0 || time.Duration(leaf.Throttle.DelayNS) >= wall {
		t.Errorf("%s: throttle %+v in %s of wall time; want some, and less than the wall time", th.Rel, leaf.Throttle, wall)
	}
	// The stat file and the map's copy agree; the parent holds the leaf's
	// (the helper parks in a sibling that allocates nothing).
	if w := byPath[th.Rel].Throttle; !w.Equal(leaf.Throttle) {
		t.Errorf("%s: read --all says %+v, the stat file %+v", th.Rel, w, leaf.Throttle)
	}
	// Its histogram: one sleep per count, each between its bucket's
	// bounds; the top's is the sum of its children's (the park has none).
	throttleAgrees(t, p, leaf)
	var lo, hi uint64
	if leaf.Throttle.Hist != nil {
		for _, b := range leaf.Throttle.Hist.Buckets() {
			lo, hi = lo+b.LoNS*b.Count, hi+b.HiNS*b.Count
		}
	}
	if leaf.Throttle.DelayNS < lo || leaf.Throttle.DelayNS >= hi {
		t.Errorf("%s: throttle %d ns, its buckets' bounds sum to [%d, %d)", th.Rel, leaf.Throttle.DelayNS, lo, hi)
	}
	var sum reclaim.Stat
	sum.Add(&leaf)
	park := byPath[top.Child("park").Rel]
	sum.Add(&park)
	if w := byPath[top.Rel].Throttle; !w.Equal(sum.Throttle) || !w.Measured {
		t.Errorf("%s: throttle %+v, its children's sum %+v", top.Rel, w, sum.Throttle)
	}
}
