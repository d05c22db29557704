package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// TestKernelServeThrottle: serve exports the throttle after memory.high of
// a cgroup that really was throttled (a page-cache writer in a leaf whose
// only limit is memory.high) as read --json reports it, series by series
// and bucket by bucket, for the leaf and its parent; and status counts the
// throttles map's entries in its memory.
func TestKernelServeThrottle(t *testing.T) {
	l := sharedLab(t)
	if l.h.Version != 2 {
		t.Skip("memory.high is cgroup v2's: nothing is throttled on v1")
	}
	rec, err := loader.ReadRecord(l.pinPath)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Throttle {
		testenv.Skip(t, "the throttle is not measured on this kernel: %s", rec.ThrottleRefused)
		return
	}
	box := l.sandbox()
	leaf := box.Child("high")
	if err := leaf.Mkdir(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := leaf.RemoveWait(5 * time.Second); err != nil {
			t.Errorf("removing %s: %v", leaf.Rel, err)
		}
	})
	if err := leaf.Write("memory.high", strconv.Itoa(8<<20)); err != nil {
		t.Fatal(err)
	}
	srv := startCLI(t, "serve", box.Rel, "--depth=-1", "--pin-path", l.pinPath, "--web.listen-address", "127.0.0.1:0")
	addr := srv.serveAddr(t)

	// A page-cache writer is throttled now and then (1-14 sleeps per 48
	// MiB in the lab: TestKernelMaxAndHigh): write until one was.
	var read struct{ Cgroups []reclaim.Stat }
	for try := 1; ; try++ {
		testenv.WriteIn(t, leaf, 48<<20)
		if err := json.Unmarshal([]byte(l.run("read", "--all", "--json", box.Rel)), &read); err != nil {
			t.Fatal(err)
		}
		if len(read.Cgroups) != 2 {
			t.Fatalf("read --all --json %s: %d cgroups, want the box and its leaf", box.Rel, len(read.Cgroups))
		}
		if th := read.Cgroups[1].Throttle; th.Count > 0 || try == 4 {
			t.Logf("after %d writes of 48 MiB: %s throttled %d times, %d ns", try, read.Cgroups[1].Path, th.Count, th.DelayNS)
			break
		}
	}
	want := map[string]float64{}
	for k, v := range expectedSeries(read.Cgroups) {
		if strings.HasPrefix(k, "cgrstat_throttle") {
			want[k] = v
		}
	}
	if read.Cgroups[1].Throttle.Count == 0 || len(want) == 0 {
		t.Fatalf("the leaf with memory.high was never throttled: %+v", read.Cgroups[1].Throttle)
	}
	// Nothing runs in the box any more: the scrape and the read agree.
	got := throttleSeries(t, scrape(t, addr))
	if !equalSeries(got, want) {
		logDiff(t, got, want)
		t.Fatal("serve's throttle series are not read --json's")
	}
	t.Logf("serve matched read --json in %d throttle series", len(want))

	var st struct {
		Maps struct {
			Stats, Throttles struct{ Entries int }
			Memory           struct {
				Preallocated uint64 `json:"preallocated_bytes"`
				PerCgroup    uint64 `json:"per_cgroup_bytes"`
				PerThrottled uint64 `json:"per_throttled_cgroup_bytes"`
				Used         uint64 `json:"used_bytes"`
			}
		}
	}
	out := l.run("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	m := st.Maps.Memory
	// The leaf and each ancestor have a throttles entry.
	if st.Maps.Throttles.Entries < 2 || m.PerThrottled != 2048 ||
		m.Used != m.Preallocated+uint64(st.Maps.Stats.Entries)*m.PerCgroup+uint64(st.Maps.Throttles.Entries)*m.PerThrottled {
		t.Errorf("status: %+v; want at least the leaf's and its parent's throttles entries, counted in the memory in use", st.Maps)
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d on SIGTERM:\n%s", code, srv.stderr)
	}
}

var (
	throttleSample = regexp.MustCompile(`^(cgrstat_throttle\w*)\{([^}]*)\}$`)
	labelPair      = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)
)

// throttleSeries are the per-cgroup throttle samples of a scrape in the
// text format, keyed as expectedSeries keys them.
func throttleSeries(t *testing.T, body string) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for key, v := range samples(body) {
		m := throttleSample.FindStringSubmatch(key)
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			labels[p[1]] = p[2]
		}
		var more []string
		if le, ok := labels["le"]; ok {
			if le != "+Inf" {
				f, err := strconv.ParseFloat(le, 64)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				le = leLabel(f)
			}
			more = []string{"le", le}
		}
		got[series(m[1], labels["cgroup"], more...)] = v
	}
	return got
}
