package exporter

import (
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// answer is one scrape's answer, its body decompressed.
type answer struct {
	contentType, encoding, vary string
	body                        string
}

func get(t testing.TB, h http.Handler, accept, encoding string) answer {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	a := answer{contentType: rec.Header().Get("Content-Type"), encoding: rec.Header().Get("Content-Encoding"),
		vary: strings.Join(rec.Header().Values("Vary"), ", "), body: rec.Body.String()}
	if a.encoding == "gzip" {
		z, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(z)
		if err != nil {
			t.Fatal(err)
		}
		a.body = string(b)
	}
	return a
}

// runtimeLines are the Go runtime's and the process' sample lines'
// names, which change values between two scrapes.
func runtimeNames(body string) string {
	var names []string
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") && !strings.Contains(l, "cgrstat_") {
			names = append(names, strings.FieldsFunc(l, func(r rune) bool { return r == '{' || r == ' ' })[0])
		}
	}
	return strings.Join(names, "\n")
}

// TestHandlerWritesWhatPromhttpWrites: for the formats serve writes
// itself (text, OpenMetrics) and every compression, the answer is
// promhttp's: the same headers, cgrstat's families byte for byte in the
// same place, the runtime's families after them, OpenMetrics' # EOF.
func TestHandlerWritesWhatPromhttpWrites(t *testing.T) {
	snap := everySeries()
	x := exemplarsOf(snap)
	x.Add(events.Event{Time: snap.At.Add(-time.Second), PID: 42, Comm: "dd", Cgroup: 3, Target: 1, Cause: "max", Duration: 2e6})
	c := New(fixed{snap}).WithExemplars(x)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	direct, err := handler(c, logger, true)
	if err != nil {
		t.Fatal(err)
	}
	reference, err := handler(c, logger, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, accept := range []string{"", "*/*", "text/plain;version=0.0.4", promAccept,
		"application/openmetrics-text;version=0.0.1", "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
		"text/plain;version=1.0.0;escaping=allow-utf-8;q=0.9,*/*;q=0.1"} {
		for _, encoding := range []string{"", "gzip", "gzip, deflate", "identity", "gzip;q=0.5, identity;q=0.6", "*"} {
			got, want := get(t, direct, accept, encoding), get(t, reference, accept, encoding)
			if got.contentType != want.contentType || got.encoding != want.encoding || got.vary != want.vary {
				t.Errorf("Accept %q, Accept-Encoding %q: headers %+v, promhttp's %+v", accept, encoding,
					[]string{got.contentType, got.encoding, got.vary}, []string{want.contentType, want.encoding, want.vary})
			}
			if g, w := ownLines(got.body, ""), ownLines(want.body, ""); g != w {
				t.Errorf("Accept %q, Accept-Encoding %q: cgrstat's families\n%s\npromhttp\n%s", accept, encoding, firstDiff(g, w), firstDiff(w, g))
			}
			if !strings.HasPrefix(got.body, ownLines(got.body, "")) {
				t.Errorf("Accept %q, Accept-Encoding %q: cgrstat's families are not first", accept, encoding)
			}
			if g, w := runtimeNames(got.body), runtimeNames(want.body); g != w {
				t.Errorf("Accept %q, Accept-Encoding %q: runtime series\n%s\npromhttp\n%s", accept, encoding, firstDiff(g, w), firstDiff(w, g))
			}
			if strings.HasSuffix(want.body, "# EOF\n") != strings.HasSuffix(got.body, "# EOF\n") {
				t.Errorf("Accept %q, Accept-Encoding %q: # EOF differs from promhttp's", accept, encoding)
			}
		}
	}
}

// TestNegotiateGzip: wherever negotiateGzip answers, it chooses what
// promhttp chooses.
func TestNegotiateGzip(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "x", Help: "x"}))
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	answered := 0
	for _, header := range []string{"", "gzip", "GZIP", "identity", "*", "gzip, identity", "identity, gzip", "gzip;q=0.5",
		"gzip;q=0.5, identity;q=0.6", "gzip;q=0.6, identity;q=0.5", "gzip;q=0", "identity;q=0", "gzip;q=0, *;q=0.1",
		"*;q=0", "deflate, br", "br;q=1.0, gzip;q=0.8, *;q=0.1", "gzip; q=0.7", " gzip ,identity;q=0.1", "x-gzip",
		"gzip;level=1", "gzip;q=2", "gzip;q=0.5x", "gzip,,identity", "gzip;q=1.000", "gzip;q=.5"} {
		gz, ok := negotiateGzip(http.Header{"Accept-Encoding": {header}})
		if !ok {
			continue
		}
		answered++
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", header)
		h.ServeHTTP(rec, req)
		if want := rec.Header().Get("Content-Encoding") == "gzip"; gz != want {
			t.Errorf("Accept-Encoding %q: gzip %v, promhttp %v", header, gz, want)
		}
	}
	if answered < 15 {
		t.Errorf("negotiateGzip answered %d of the headers: too few", answered)
	}
}

// benchTree is a tree like the bench's (bench/tree.go): n cgroups, ten
// children a node (node i's parent is node (i-1)/10), below a top as deep
// as a supervisor's cgroup, reclaim in a few of them; in a snapshot's
// order, depth first.
func benchTree(n int) *readout.Snapshot {
	snap := &readout.Snapshot{At: time.Now(), Health: readout.Health{Flush: "walk"}}
	var add func(i int, path string)
	add = func(i int, path string) {
		c := reclaim.Stat{ID: uint64(i + 1), Path: path}
		if i%500 == 0 {
			c.Observe(reclaim.Max, 1e5, 100, true)
		}
		snap.Rows = append(snap.Rows, readout.Row{Stat: c})
		for k := range 10 {
			if child := 10*i + 1 + k; child < n {
				add(child, fmt.Sprintf("%s/c%d", path, k))
			}
		}
	}
	add(0, "/process_api/dec6128c4121daab8b7a2b5cc910434d/cgrstat-bench-123456/n10000")
	snap.Cgroups = len(snap.Rows)
	return snap
}

// BenchmarkScrapeHTTP10k: a scrape as the bench makes it (GET over
// loopback, gzip, the body read in full) of benchTree(10000), written by
// serve itself and by promhttp.
func BenchmarkScrapeHTTP10k(b *testing.B) {
	c := New(fixed{benchTree(10000)})
	for _, direct := range []bool{true, false} {
		h, err := handler(c, slog.New(slog.NewTextHandler(io.Discard, nil)), direct)
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(h)
		b.Run(map[bool]string{true: "text", false: "promhttp"}[direct], func(b *testing.B) {
			for b.Loop() {
				resp, err := srv.Client().Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n < 1e6 {
					b.Fatalf("%d bytes: %v", n, err)
				}
			}
		})
		srv.Close()
	}
}
