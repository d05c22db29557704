package reclaim_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// TestKernelCausesAndForced: a task in cgroup w reclaims memory charged to
// cgroup x, first through x's memory.reclaim (cgroup v2), then by lowering
// x's limit. w stalls (proactive, then limit reclaim); x forced it all and
// stalled in nothing; their parent sums both; and the seed's fields are
// memory-cgroup reclaim only.
func TestKernelCausesAndForced(t *testing.T) {
	for _, mode := range []loader.Mode{loader.Walk, loader.Auto} {
		t.Run(string(mode), func(t *testing.T) { causesAndForced(t, mode) })
	}
}

func causesAndForced(t *testing.T, mode loader.Mode) {
	p, h := testenv.Load(t, mode, 0)
	top := testenv.Cgroups(t, h, "w", "x", "park")
	enableMemory(t, h, top)
	w, x := top.Child("w"), top.Child("x")
	hp := startHelper(t, h, top.Child("park"))
	// Pages charged to x that stay after the helper leaves it: tmpfs
	// (no swap), so that every reclaim runs and finds nothing to take.
	file := filepath.Join("/dev/shm", testenv.Name(t))
	if _, err := os.Stat("/dev/shm"); err != nil {
		file = filepath.Join(os.TempDir(), testenv.Name(t))
	}
	t.Cleanup(func() { os.Remove(file) })
	for _, cmd := range [][]string{{"join", x.Path}, {"fill", file, "4194304"}, {"join", w.Path}} {
		if err := hp.do(cmd...); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	read := func() map[string]reclaim.Stat {
		all, err := reclaim.Subtree(p, top)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]reclaim.Stat{}
		for _, s := range all {
			out[s.Path] = s
		}
		return out
	}
	var proactive uint64
	if h.Version == 2 {
		// One page: the kernel may find a page or two to take (measured on
		// 6.1: asking for 1 MiB of x's unreclaimable tmpfs from outside x
		// ran for minutes, a page at a time), and stops at the first.
		if err := hp.do("write", filepath.Join(x.Path, "memory.reclaim"), "4096"); err != nil {
			t.Fatal(err)
		}
		s := read()
		ws := s[w.Rel]
		proactive = ws.ProactiveHist.Total()
		if proactive == 0 || ws.LimitHist.Total() != 0 || s[w.Rel].Forced.Count != 0 {
			t.Errorf("after memory.reclaim of x from w: w has %+v, want proactive reclaim only", s[w.Rel])
		}
		if xs := s[x.Rel]; xs.Count != 0 || xs.Forced.Count != proactive {
			t.Errorf("x stalled %d times and forced %d, want 0 and %d", xs.Count, xs.Forced.Count, proactive)
		}
	} else {
		t.Log("cgroup v1 has no memory.reclaim: proactive reclaim not induced")
	}
	limitFile, usageFile, restore := "memory.max", "memory.current", "max"
	if h.Version == 1 {
		limitFile, usageFile, restore = "memory.limit_in_bytes", "memory.usage_in_bytes", "-1"
	}
	t.Cleanup(func() { x.Write(limitFile, restore) })
	usage, err := x.Read(usageFile)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(usage, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB below the usage: more than the per-CPU charge stocks (64 pages
	// per CPU) that the kernel drains before it reclaims. No task is in x:
	// its limit cannot OOM-kill anything.
	if err := hp.do("write", filepath.Join(x.Path, limitFile), strconv.FormatInt(n-1<<20, 10)); err != nil {
		t.Fatal(err)
	}
	if err := x.Write(limitFile, restore); err != nil {
		t.Fatal(err)
	}
	s := read()
	ws, xs, ts := s[w.Rel], s[x.Rel], s[top.Rel]
	limit := ws.LimitHist.Total()
	if limit == 0 || ws.ProactiveHist.Total() != proactive {
		t.Errorf("after lowering x's limit from w: w has limit %d, proactive %d; want limit > 0, proactive %d", limit, ws.ProactiveHist.Total(), proactive)
	}
	if xs.Count != 0 || xs.Forced.Count != limit+proactive {
		t.Errorf("x stalled %d times and forced %d, want 0 and %d", xs.Count, xs.Forced.Count, limit+proactive)
	}
	if ts.Count != limit+proactive || ts.Forced.Count != limit+proactive || ts.Causes[reclaim.Direct].Count != 0 {
		t.Errorf("top: %d reclaims, %d forced, %d direct; want %d, %d, 0", ts.Count, ts.Forced.Count, ts.Causes[reclaim.Direct].Count, limit+proactive, limit+proactive)
	}
	if ws.MaxNS == 0 || ts.MaxNS != ws.MaxNS || ts.DelayNS < ws.MaxNS {
		t.Errorf("max delay: w %d, top %d (total delay %d)", ws.MaxNS, ts.MaxNS, ts.DelayNS)
	}
	t.Logf("w: %d proactive, %d limit reclaims, max %d ns; x forced %d", proactive, limit, ws.MaxNS, xs.Forced.Count)
	assertNothingLostBut(t, p)
}

// assertNothingLostBut allows lost rstat marks where the kernel cannot
// mark a target that is not an ancestor of the stalled task's cgroup
// (6.1, which lacks bpf_cgroup_from_id; cgroup v1 on 6.16+).
func assertNothingLostBut(t *testing.T, p *loader.Pinned) {
	t.Helper()
	l, err := p.LostCounts()
	if err != nil {
		t.Fatal(err)
	}
	if l.RstatMarks > 0 {
		t.Logf("%d rstat marks lost (targets outside the stalled task's ancestors cannot be marked on this kernel)", l.RstatMarks)
		l.RstatMarks = 0
	}
	if l.Any() {
		t.Errorf("lost %+v", l)
	}
}
