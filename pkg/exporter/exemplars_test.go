package exporter

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// promAccept is what Prometheus 2.42 (Debian bookworm's) sends.
const promAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

// TestExemplarBuckets: an event goes to the exported bucket whose
// cumulative count holds its kernel bucket, the first one that counts it.
func TestExemplarBuckets(t *testing.T) {
	if promBuckets != len(bounds)+1 {
		t.Fatalf("promBuckets %d, want %d", promBuckets, len(bounds)+1)
	}
	for _, ns := range []uint64{0, 1, 1023, 1024, 1025, 4095, 4096, 1e5, 999_999, 1 << 20, 1<<20 + 1, 1e9, 1<<36 - 1, 1 << 36, math.MaxUint64} {
		var h reclaim.Hist
		h[reclaim.BucketOf(ns)] = 1
		_, cum := cumulative(&h)
		want := len(bounds)
		for j := range cum {
			if cum[j] == 1 {
				want = j
				break
			}
		}
		if got := promBucket(ns); got != want {
			t.Errorf("%d ns: bucket %d, want %d", ns, got, want)
		}
		if want < len(bounds) && float64(ns)/1e9 > bounds[want] {
			t.Errorf("%d ns: above its bucket's le %g", ns, bounds[want])
		}
	}
}

// tree is /top with /top/a and /top/a/b, and /top/c, read at 1000 s.
func tree() *readout.Snapshot {
	snap := &readout.Snapshot{At: time.Unix(1000, 0), Health: readout.Health{Flush: "walk"}}
	for i, p := range []string{"/top", "/top/a", "/top/a/b", "/top/c"} {
		c := reclaim.Stat{ID: uint64(i + 1), Path: p, Count: 3}
		c.Causes[reclaim.Max] = reclaim.Counters{DelayNS: 6e6, Count: 3}
		c.Own()
		c.LimitHist[reclaim.BucketOf(2e6)] = 3
		c.Causes[reclaim.High] = reclaim.Counters{DelayNS: 1e3, Count: 1}
		c.LimitHist[reclaim.BucketOf(1e3)] = 1
		snap.Rows = append(snap.Rows, readout.Row{Stat: c})
	}
	return snap
}

// treeNames resolves tree's ids, 98 and 99, cgroups below /top that the
// snapshot does not hold, and 97, a cgroup outside /top.
func treeNames(id uint64, _ int) (string, bool) {
	p, ok := map[uint64]string{1: "/top", 2: "/top/a", 3: "/top/a/b", 4: "/top/c", 97: "/other", 98: "/top/new", 99: "/top/gone"}[id]
	return p, ok
}

// exemplarLabels are an exemplar's labels and its time (seconds), as one
// string; "none" when there is none.
func exemplarLabels(got map[string]*cgroupExemplars, path string, cause int, bucket int) string {
	ex := got[path]
	if ex == nil || ex[cause] == nil || ex[cause][bucket] == nil {
		return "none"
	}
	e := ex[cause][bucket]
	var parts []string
	for _, l := range e.Label {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return fmt.Sprint(strings.Join(parts, ","), " ", e.Timestamp.GetSeconds())
}

// TestExemplarStore: the most recent event of a bucket wins, whatever
// order events arrive in; a cgroup's exemplar is the newest of its
// subtree, kept after the cgroup where it happened is gone; direct reclaim
// has none; the target is a label where it is not the series' cgroup, its
// id where it has no path; cgroups a scrape does not find are forgotten
// unless their event is newer than the read.
func TestExemplarStore(t *testing.T) {
	x := NewExemplars(100, "/top", treeNames)
	at := func(s int64) time.Time { return time.Unix(s, 0) }
	x.Add(events.Event{Time: at(10), PID: 1, Comm: "old", Cgroup: 3, Target: 2, Cause: "max", Duration: 2e6})
	x.Add(events.Event{Time: at(20), PID: 2, Comm: "new", Cgroup: 3, Target: 2, Cause: "max", Duration: 3e6})
	x.Add(events.Event{Time: at(15), PID: 3, Comm: "late", Cgroup: 3, Target: 2, Cause: "max", Duration: 2e6})
	x.Add(events.Event{Time: at(12), PID: 4, Comm: "sibling", Cgroup: 4, Target: 4, Cause: "max", Duration: 2e6})
	x.Add(events.Event{Time: at(30), PID: 5, Comm: "direct", Cgroup: 4, Cause: "direct", Duration: 2e6})
	x.Add(events.Event{Time: at(25), PID: 6, Comm: "gone", Cgroup: 99, Target: 500, Cause: "high", Duration: 2e6})
	x.Add(events.Event{Time: at(2000), PID: 7, Comm: "after", Cgroup: 98, Target: 98, Cause: "max", Duration: 100e9})
	x.Add(events.Event{Time: at(40), PID: 8, Comm: "unknown", Cgroup: 600, Target: 600, Cause: "max", Duration: 2e6})
	x.Add(events.Event{Time: at(50), PID: 9, Comm: "outside", Cgroup: 97, Target: 97, Cause: "max", Duration: 2e6})
	if x.Len() != 3+1+1+1+1 {
		t.Errorf("%d records, want 7 (/top/a/b's up to /top, /top/c's, /top/gone's and /top/new's, and /top's of the +Inf bucket; none of /other)", x.Len())
	}
	if x.Unplaced() != 0 || len(x.pending) != 1 {
		t.Errorf("%d events unplaced, %d waiting; want cgroup 600's waiting for the scrape", x.Unplaced(), len(x.pending))
	}
	got := x.forScrape(tree())
	j, inf := promBucket(2e6), len(bounds)
	const limit, proactive = 0, 1 // reclaim.Stat.Dists: max and high share limit
	for _, c := range []struct {
		path   string
		cause  int
		bucket int
		want   string
	}{
		{"/top/a/b", limit, j, "comm=new,pid=2,target=/top/a 20"},
		{"/top/a", limit, j, "comm=new,pid=2 20"}, // its own limit: no target label
		// high's event is newer than max's in the shared distribution;
		// its cgroup is gone
		{"/top", limit, j, "comm=gone,pid=6,target_id=500 25"},
		{"/top/c", limit, j, "comm=sibling,pid=4 12"},
		{"/top", limit, inf, "comm=after,pid=7,target=/top/new 2000"},
		{"/top/a", proactive, j, "none"},
		{"/top/c", limit, inf, "none"},
	} {
		if g := exemplarLabels(got, c.path, c.cause, c.bucket); g != c.want {
			t.Errorf("%s %s bucket %d: %s, want %s", c.path, distNames[c.cause], c.bucket, g, c.want)
		}
	}
	n := 0
	for _, ex := range got {
		for c := range ex {
			for _, e := range ex[c] {
				if e != nil {
					n++
				}
			}
		}
	}
	if len(got) != 4 || n != 5 {
		t.Errorf("%d exemplars in %d cgroups, want 5 in 4", n, len(got))
	}
	// Gone: /top/gone (older than the read); kept: /top/new (newer), and
	// the five shown.
	if x.Len() != 6 {
		t.Errorf("%d records after the scrape, want 6", x.Len())
	}
	if NewExemplars(10, "/top", treeNames).forScrape(tree()) != nil {
		t.Error("an empty store returns exemplars")
	}
}

// TestExemplarIndex: where the resolver cannot name a cgroup (serve in a
// container without the host's pids), the cgroups of the last scrape are
// named from it.
func TestExemplarIndex(t *testing.T) {
	x := NewExemplars(100, "/top", func(uint64, int) (string, bool) { return "", false })
	e := events.Event{Time: time.Unix(2000, 0), PID: 1, Comm: "a", Cgroup: 3, Target: 2, Cause: "max", Duration: 2e6}
	x.Add(e)
	gone := e
	gone.Cgroup, gone.Time = 600, time.Unix(2001, 0)
	x.Add(gone)
	if x.Len() != 0 || x.Unplaced() != 0 {
		t.Fatalf("%d records, %d unplaced; want both events waiting for a scrape", x.Len(), x.Unplaced())
	}
	got := x.forScrape(tree())
	if g := exemplarLabels(got, "/top", 0, promBucket(2e6)); g != "comm=a,pid=1,target=/top/a 2000" {
		t.Errorf("/top: %s, want the event named from the scrape's cgroups", g)
	}
	if x.Unplaced() != 1 {
		t.Errorf("%d events unplaced, want 1 (cgroup 600, not in the scrape either)", x.Unplaced())
	}
}

// TestExemplarLimit: a full store drops its older half and keeps taking
// events.
func TestExemplarLimit(t *testing.T) {
	x := NewExemplars(100, "/", func(id uint64, _ int) (string, bool) { return fmt.Sprintf("/c%d", id), true })
	for i := range 1000 {
		x.Add(events.Event{Time: time.Unix(int64(i), 0), Cgroup: uint64(i), Cause: "max", Duration: 2e6})
		if x.Len() > 100 {
			t.Fatalf("%d records after %d events, limit 100", x.Len(), i+1)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.recent[exemplarKey{path: "/c999", bucket: uint8(promBucket(2e6))}]; !ok {
		t.Error("the newest event is not kept")
	}
	for k := range x.recent {
		var i int
		if _, err := fmt.Sscanf(k.path, "/c%d", &i); err == nil && i < 900 {
			t.Errorf("%s kept, older than the 100 newest", k.path)
		}
	}
}

// TestExemplarLabels: an untrusted comm is escaped into valid UTF-8, and
// the label set stays within OpenMetrics' 128 runes, a long target losing
// its head.
func TestExemplarLabels(t *testing.T) {
	long := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b3c9a5e_8f2d_4c1e_9a7b_2d4e6f8a1c3b.slice/cri-containerd-3f9c2a1b6d8e4f70a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718.scope"
	r := exemplarRecord{unixNano: 1, durationNS: 5e6, pid: 4194304, targetID: 7, target: long}
	copy(r.comm[:], "\x1b[2J\xff\"x\\\n0123456")
	e := r.exemplar("/")
	runes := 0
	vals := map[string]string{}
	for _, l := range e.Label {
		runes += utf8.RuneCountInString(l.GetName()) + utf8.RuneCountInString(l.GetValue())
		vals[l.GetName()] = l.GetValue()
		if !utf8.ValidString(l.GetValue()) {
			t.Errorf("label %s is not UTF-8: %q", l.GetName(), l.GetValue())
		}
	}
	if runes > exemplarRunes {
		t.Errorf("%d runes of labels, limit %d: %v", runes, exemplarRunes, vals)
	}
	if want := `\x1b[2J\xff"x\\\x0a0123456`; vals["comm"] != want {
		t.Errorf("comm %q, want %q", vals["comm"], want)
	}
	if tg := vals["target"]; !strings.HasPrefix(tg, "…") || !strings.HasSuffix(long, strings.TrimPrefix(tg, "…")) {
		t.Errorf("target %q: want the tail of %s after …", tg, long)
	}
	r.target = ""
	if l := r.exemplar("/").Label; len(l) != 3 || l[2].GetName() != "target_id" || l[2].GetValue() != "7" {
		t.Errorf("a target outside the snapshot: %v, want target_id 7", l)
	}
	if e.GetValue() != 0.005 {
		t.Errorf("value %v, want 0.005 s", e.GetValue())
	}
}

func scrapeAccept(t *testing.T, c *Collector, accept string) (contentType, body string) {
	h, err := Handler(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return rec.Header().Get("Content-Type"), rec.Body.String()
}

// ownLines are the lines of cgrstat's own families, without the Go
// runtime's and the process' (which change between two scrapes).
func ownLines(body, except string) string {
	var own []string
	for _, l := range strings.SplitAfter(body, "\n") {
		if strings.Contains(l, "cgrstat_") && (except == "" || !strings.Contains(l, except)) {
			own = append(own, l)
		}
	}
	return strings.Join(own, "")
}

// TestOpenMetricsNegotiation: Prometheus' Accept gets OpenMetrics with an
// exemplar on the bucket of each event (+Inf included); a scraper that
// does not ask for OpenMetrics gets the text format, byte for byte what
// it gets without exemplars but for serve's count of the events it could
// not place (cgrstat_exemplar_events_unplaced_total, 0 here).
func TestOpenMetricsNegotiation(t *testing.T) {
	x := NewExemplars(10, "/top", treeNames)
	x.Add(events.Event{Time: time.Unix(1500, 250e6), PID: 42, Comm: "dd", Cgroup: 3, Target: 3, Cause: "max", Duration: 2e6})
	x.Add(events.Event{Time: time.Unix(1501, 0), PID: 43, Comm: "sort", Cgroup: 3, Target: 1, Cause: "max", Duration: 100e9})
	with := New(fixed{tree()}).WithExemplars(x)
	without := New(fixed{tree()})

	for _, accept := range []string{"", "*/*", "text/plain", "text/plain;version=0.0.4"} {
		ct, body := scrapeAccept(t, with, accept)
		_, plain := scrapeAccept(t, without, accept)
		if !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Accept %q: Content-Type %s, want the text format", accept, ct)
		}
		unplaced := "cgrstat_exemplar_events_unplaced_total 0\n"
		if !strings.Contains(body, unplaced) || strings.Contains(plain, "unplaced") {
			t.Errorf("Accept %q: want %q with exemplars only", accept, unplaced)
		}
		if body, plain = ownLines(body, "cgrstat_exemplar_events_unplaced_total"), ownLines(plain, ""); body != plain {
			t.Errorf("Accept %q: the text format changed with exemplars:\n%s\n---\n%s", accept, body, plain)
		}
	}

	ct, body := scrapeAccept(t, with, promAccept)
	if !strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0") {
		t.Fatalf("Content-Type %s, want OpenMetrics 1.0.0", ct)
	}
	if !strings.HasSuffix(body, "# EOF\n") {
		t.Error("OpenMetrics without # EOF")
	}
	for _, want := range []string{
		`cgrstat_reclaim_duration_seconds_bucket{cause="limit",cgroup="/top/a/b",le="0.004194304"} 4 # {comm="dd",pid="42"} 0.002 1500.25`,
		`cgrstat_reclaim_duration_seconds_bucket{cause="limit",cgroup="/top/a",le="0.004194304"} 4 # {comm="dd",pid="42",target="/top/a/b"} 0.002 1500.25`,
		`cgrstat_reclaim_duration_seconds_bucket{cause="limit",cgroup="/top",le="+Inf"} 4 # {comm="sort",pid="43"} 100.0 1501.0`,
		`cgrstat_reclaim_duration_seconds_bucket{cause="limit",cgroup="/top/a/b",le="+Inf"} 4 # {comm="sort",pid="43",target="/top"} 100.0 1501.0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("OpenMetrics lacks\n%s", want)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^[^#]* # \{`).FindAllString(body, -1)); n != 6 {
		t.Errorf("%d exemplars, want 6 (two events, each on /top, /top/a, /top/a/b):\n%s", n, body)
	}
	if n := strings.Count(body, `cgroup="/top/c",le="+Inf"`); n != 1 {
		t.Errorf("/top/c has %d +Inf buckets, want one (limit: max and high share it)", n)
	}
}

// BenchmarkScrape10kExemplars: BenchmarkScrape10k's tree with an event in
// every bucket of the 100 active cgroups (each placed up to the top), in
// the OpenMetrics format.
func BenchmarkScrape10kExemplars(b *testing.B) {
	snap := syntheticActive(10000, 100)
	names := map[uint64]string{}
	for _, c := range snap.Rows {
		names[c.ID] = c.Path
	}
	x := NewExemplars(DefaultExemplarLimit, "/top", func(id uint64, _ int) (string, bool) { p, ok := names[id]; return p, ok })
	for i := range 100 {
		for j := range promBuckets {
			x.Add(events.Event{Time: snap.At.Add(-time.Second), PID: i + 1, Comm: "worker", Cgroup: uint64(i + 1),
				Target: 1, Cause: "max", Duration: time.Duration(uint64(1) << (10 + 2*j) >> 1)})
		}
	}
	b.Logf("%d records", x.Len())
	c := New(fixed{snap}).WithExemplars(x)
	h, err := Handler(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept", promAccept)
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkExemplarAdd: one event of a cgroup five levels below the top,
// its name known, as serve takes at most ExemplarRate a second.
func BenchmarkExemplarAdd(b *testing.B) {
	x := NewExemplars(DefaultExemplarLimit, "/", func(uint64, int) (string, bool) { return "/kubepods/burstable/pod0b3c/3f9c/x", true })
	e := events.Event{Time: time.Unix(1, 0), PID: 1, Comm: "java", Cgroup: 7, Target: 7, Cause: "max", Duration: 2e6}
	for b.Loop() {
		e.Time = e.Time.Add(time.Millisecond)
		x.Add(e)
	}
}
