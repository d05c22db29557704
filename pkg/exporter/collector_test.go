package exporter

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// fixed is a Reader of one snapshot.
type fixed struct{ snap *readout.Snapshot }

func (f fixed) Read() (*readout.Snapshot, error) { return f.snap, nil }

// synthetic is a tree of n cgroups, ten children per node; the first
// active ones have reclaimed.
func synthetic(n int) *readout.Snapshot { return syntheticActive(n, n) }

func syntheticActive(n, active int) *readout.Snapshot {
	snap := &readout.Snapshot{At: time.Now(), Health: readout.Health{Flush: "walk"}}
	paths := []string{"/top"}
	for i := 1; i < n; i++ {
		paths = append(paths, fmt.Sprintf("%s/c%d", paths[(i-1)/10], (i-1)%10))
	}
	for i, p := range paths {
		if i >= active {
			snap.Rows = append(snap.Rows, readout.Row{Stat: reclaim.Stat{ID: uint64(i + 1), Path: p}})
			continue
		}
		c := reclaim.Stat{ID: uint64(i + 1), Path: p, DelayNS: 1e6, Count: 10, Reclaimed: 100, MaxNS: 5e5}
		c.Own()
		c.LimitHist[reclaim.BucketOf(1e5)] = 10
		c.Causes[reclaim.Max] = reclaim.Counters{DelayNS: 1e6, Count: 10, Reclaimed: 100}
		snap.Rows = append(snap.Rows, readout.Row{Stat: c})
	}
	snap.Cgroups = len(snap.Rows)
	return snap
}

func scrapeOnce(t testing.TB, c *Collector) string {
	h, err := Handler(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestCollectSeriesPerCgroup(t *testing.T) {
	body := scrapeOnce(t, New(fixed{synthetic(11)}))
	n := len(regexp.MustCompile(`cgroup="/top/c3"[,}]`).FindAllString(body, -1))
	if n != 3+1+3+17 { // memcg totals; max; count, time and pages of limit; its histogram
		t.Errorf("%d series for a cgroup with limit reclaim, want 24", n)
	}
	for _, want := range []string{
		`cgrstat_reclaim_seconds_total{cause="max",cgroup="/top/c3"} 0.001`,
		`cgrstat_reclaim_duration_seconds_bucket{cause="limit",cgroup="/top/c3",le="0.000262144"} 10`,
		`cgrstat_reclaim_duration_seconds_bucket{cause="limit",cgroup="/top/c3",le="6.5536e-05"} 0`,
		`cgrstat_reclaim_duration_seconds_count{cause="limit",cgroup="/top/c3"} 10`,
		`cgrstat_memcg_reclaim_seconds_total{cgroup="/top/c3"} 0.001`,
		`cgrstat_exported_cgroups 11`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

func TestIdleCgroupHasItsCountOnly(t *testing.T) {
	snap := synthetic(2)
	snap.Rows[1] = readout.Row{Stat: reclaim.Stat{ID: 2, Path: "/top/idle"}}
	body := scrapeOnce(t, New(fixed{snap}))
	got := regexp.MustCompile(`(?m)^.*cgroup="/top/idle"[,}].*$`).FindAllString(body, -1)
	want := []string{`cgrstat_memcg_reclaims_total{cgroup="/top/idle"} 0`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("an idle cgroup exports\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRegistryAgrees gathers through a pedantic registry, which checks
// every metric against its descriptor, label names and duplicates, and
// finds the same series as the direct path.
func TestRegistryAgrees(t *testing.T) {
	snap := syntheticActive(111, 30)
	snap.Rows[5].Forced = reclaim.Counters{DelayNS: 7, Count: 1}
	c := New(fixed{snap})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	viaRegistry, err := reg.Gather()
	if err != nil {
		t.Fatalf("the registry refuses the metrics: %v", err)
	}
	direct, err := c.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := sortedText(t, viaRegistry), sortedText(t, direct); a != b {
		t.Errorf("registry and direct gathering differ:\n%s\n---\n%s", a, b)
	}
}

func sortedText(t *testing.T, mfs []*dto.MetricFamily) string {
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(b.String(), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// BenchmarkScrape10k: 10,000 cgroups, 100 of which have reclaimed.
func BenchmarkScrape10k(b *testing.B) {
	c := New(fixed{syntheticActive(10000, 100)})
	for b.Loop() {
		scrapeOnce(b, c)
	}
}

// TestCgroupInfo: one cgrstat_cgroup_info series per exported cgroup that
// has an identity, in kube-state-metrics' formats; no other series gains
// an identity label; the registry accepts it.
func TestCgroupInfo(t *testing.T) {
	const (
		uid = "0b3c9a5e-8f2d-4c1e-9a7b-2d4e6f8a1c3b"
		cid = "3f9c2a1b6d8e4f70a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"
	)
	pod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b3c9a5e_8f2d_4c1e_9a7b_2d4e6f8a1c3b.slice"
	snap := synthetic(1)
	for i, p := range []string{"/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice", pod,
		pod + "/cri-containerd-" + cid + ".scope", "/system.slice/nginx.service", "/plain"} {
		snap.Rows = append(snap.Rows, readout.Row{Stat: reclaim.Stat{ID: uint64(i + 10), Path: p}})
	}
	c := New(fixed{snap})
	body := scrapeOnce(t, c)
	got := regexp.MustCompile(`(?m)^cgrstat_cgroup_info\{.*$`).FindAllString(body, -1)
	want := []string{
		`cgrstat_cgroup_info{cgroup="/kubepods.slice",container_id="",kind="kubepods",pod_uid="",qos="",runtime="",unit="kubepods.slice",user=""} 1`,
		`cgrstat_cgroup_info{cgroup="/kubepods.slice/kubepods-burstable.slice",container_id="",kind="qos",pod_uid="",qos="burstable",runtime="",unit="kubepods-burstable.slice",user=""} 1`,
		`cgrstat_cgroup_info{cgroup="` + pod + `",container_id="",kind="pod",pod_uid="` + uid + `",qos="burstable",runtime="",unit="kubepods-burstable-pod0b3c9a5e_8f2d_4c1e_9a7b_2d4e6f8a1c3b.slice",user=""} 1`,
		`cgrstat_cgroup_info{cgroup="` + pod + `/cri-containerd-` + cid + `.scope",container_id="containerd://` + cid + `",kind="container",pod_uid="` + uid + `",qos="burstable",runtime="containerd",unit="cri-containerd-` + cid + `.scope",user=""} 1`,
		`cgrstat_cgroup_info{cgroup="/system.slice/nginx.service",container_id="",kind="unit",pod_uid="",qos="",runtime="",unit="nginx.service",user=""} 1`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("info series\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, "pod_uid=") && !strings.HasPrefix(line, "cgrstat_cgroup_info{") {
			t.Errorf("an identity label on another series: %s", line)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Errorf("the registry refuses the info series: %v", err)
	}
}

// TestCollectKernelFigures: the kernel's own events and pressure, named as
// cadvisor and node_exporter name them, each from its first non-zero value;
// v1's failcnt instead of v2's events.
func TestCollectKernelFigures(t *testing.T) {
	snap := synthetic(3)
	snap.Rows[1].Events = reclaim.Events{Read: true, High: 329, OOMKill: 1}
	snap.Rows[1].Pressure = reclaim.Pressure{Read: true, SomeNS: 5_400_000_000, FullNS: 2_000_000_000}
	snap.Rows[2].Events = reclaim.Events{Read: true, V1: true, Failcnt: 7, OOMKill: 2, High: 9}
	body := scrapeOnce(t, New(fixed{snap}))
	for _, want := range []string{
		`cgrstat_memory_events_high_total{cgroup="/top/c0"} 329`,
		`cgrstat_memory_events_oom_kill_total{cgroup="/top/c0"} 1`,
		`cgrstat_pressure_memory_waiting_seconds_total{cgroup="/top/c0"} 5.4`,
		`cgrstat_pressure_memory_stalled_seconds_total{cgroup="/top/c0"} 2`,
		`cgrstat_memory_failcnt_total{cgroup="/top/c1"} 7`,
		`cgrstat_memory_events_oom_kill_total{cgroup="/top/c1"} 2`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
	for _, absent := range []string{
		`cgrstat_memory_events_max_total{cgroup="/top/c0"}`,            // 0: not yet
		`cgrstat_memory_events_high_total{cgroup="/top/c1"}`,           // v1 has no memory.high
		`cgrstat_pressure_memory_waiting_seconds_total{cgroup="/top"}`, // not read
	} {
		if strings.Contains(body, absent) {
			t.Errorf("scrape has %s", absent)
		}
	}
}

// reusing is a RowsReader that writes its snapshots into the rows it is
// given, as readout.Source does, each time with other paths.
type reusing struct {
	n     int
	given [][]readout.Row
}

func (r *reusing) Read() (*readout.Snapshot, error) { return r.ReadInto(nil) }

func (r *reusing) ReadInto(rows []readout.Row) (*readout.Snapshot, error) {
	r.given = append(r.given, rows)
	r.n++
	snap := synthetic(3)
	rows = rows[:0]
	for _, row := range snap.Rows {
		row.Path = fmt.Sprintf("%s/scrape%d", row.Path, r.n)
		rows = append(rows, row)
	}
	snap.Rows = rows
	return snap, nil
}

// TestRowsReused: a scrape reads into the rows of the one before, and what
// it gathered does not change when the next scrape overwrites them.
func TestRowsReused(t *testing.T) {
	src := &reusing{}
	c := New(src)
	first, err := c.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Gather(); err != nil {
		t.Fatal(err)
	}
	if len(src.given) != 2 || src.given[0] != nil || cap(src.given[1]) < 3 {
		t.Fatalf("rows given to the reads: %d reads, the second with room for %d rows; want the first scrape's", len(src.given), cap(src.given[1]))
	}
	for _, mf := range first {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "cgroup" && !strings.HasSuffix(l.GetValue(), "/scrape1") {
					t.Fatalf("the first scrape's %s has cgroup %q after the second scrape", mf.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestThrottleSeries: a cgroup that slept after memory.high has the
// throttle's time, count and histogram; one that did not has none of
// them, nor one whose load does not measure the throttle.
func TestThrottleSeries(t *testing.T) {
	snap := syntheticActive(3, 0)
	snap.Health.Throttle = true
	for i := range snap.Rows {
		snap.Rows[i].Throttle.Measured = true
	}
	snap.Rows[1].ObserveThrottle(300_000_000)
	snap.Rows[1].ObserveThrottle(2_000_000)
	body := scrapeOnce(t, New(fixed{snap}))
	for _, want := range []string{
		`cgrstat_throttle_seconds_total{cgroup="/top/c0"} 0.302`,
		`cgrstat_throttles_total{cgroup="/top/c0"} 2`,
		`cgrstat_throttle_duration_seconds_bucket{cgroup="/top/c0",le="0.004194304"} 1`,
		`cgrstat_throttle_duration_seconds_bucket{cgroup="/top/c0",le="0.268435456"} 1`,
		`cgrstat_throttle_duration_seconds_bucket{cgroup="/top/c0",le="1.073741824"} 2`,
		`cgrstat_throttle_duration_seconds_count{cgroup="/top/c0"} 2`,
		`cgrstat_throttle_duration_seconds_sum{cgroup="/top/c0"} 0.302`,
		`cgrstat_throttle_measured 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if n := strings.Count(body, "cgrstat_throttle_duration_seconds_count{"); n != 1 {
		t.Errorf("%d throttle histograms, want the one of /top/c0:\n%s", n, body)
	}
	snap.Health.Throttle = false
	for i := range snap.Rows {
		snap.Rows[i].Throttle.Measured = false
	}
	if body := scrapeOnce(t, New(fixed{snap})); strings.Contains(body, "cgrstat_throttle_duration_seconds_count{") || !strings.Contains(body, "cgrstat_throttle_measured 0\n") {
		t.Errorf("unmeasured throttle exported:\n%s", body)
	}
}
