package main

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// TestKernelServeExemplarStream: serve's exemplars come from the event
// stream, and serve copes without it. With every subscriber slot taken,
// serve says so once, serves (without exemplars), and takes a slot freed
// later by itself; after an unload and a new load it reads the new load's
// stream: a reclaim then is an exemplar on the leaf's buckets in the
// OpenMetrics format, naming the writer by pid and comm, and the text
// format has none.
func TestKernelServeExemplarStream(t *testing.T) {
	l := newLab(t)
	l.run("load", "--flush", "walk")
	var held []*readout.EventReader
	t.Cleanup(func() {
		for _, r := range held {
			r.Close()
		}
	})
	for {
		r, err := readout.OpenEvents(l.pinPath, events.Options{Min: time.Hour})
		if errors.Is(err, events.ErrNoSlot) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	srv := startCLI(t, l.args("serve", "--web.listen-address", freeAddr(t), "--depth=-1", "--exemplars.min=0")...)
	addr := srv.serveAddr(t)
	time.Sleep(5 * time.Second) // two more tries
	if n := strings.Count(srv.stderr.String(), "serving without exemplars"); n != 1 || !strings.Contains(srv.stderr.String(), "subscriber slot") {
		t.Errorf("serve with every slot taken said %d times that it serves without exemplars, want once, naming the slots:\n%s", n, srv.stderr)
	}
	if code, body := get(t, addr); code != http.StatusOK {
		t.Fatalf("scrape without exemplars: %d %.300s", code, body)
	}
	held[0].Close()
	held = held[1:]
	waitFor(t, "serve to take the freed slot", func() bool {
		return strings.Contains(srv.stderr.String(), "exemplars: reading the event stream")
	})

	l.run("unload")
	l.run("load", "--flush", "walk")
	waitFor(t, "serve to read the new load's stream", func() bool {
		return strings.Count(srv.stderr.String(), "exemplars: reading the event stream") == 2
	})
	// A writer in a leaf of its own limit: unlike stress's v1 scratch
	// cgroups and children, the leaf outlives it, and the events reach
	// serve within 100 ms (the stream wakes readers only when it fills).
	_, leaf := testenv.LimitedLeaf(t, l.h)
	pid, comm := testenv.WriteIn(t, leaf, 48<<20)
	exemplar := regexp.MustCompile(`(?m)^cgrstat_reclaim_duration_seconds_bucket\{cause="[a-z]+",cgroup="` + regexp.QuoteMeta(leaf.Rel) +
		`",le="[^"]+"\} \d+ # \{comm="` + regexp.QuoteMeta(comm) + `",pid="` + strconv.Itoa(pid) + `"\}`)
	var body string
	for deadline := time.Now().Add(10 * time.Second); !exemplar.MatchString(body); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			var lines []string
			for _, line := range strings.Split(body, "\n") {
				if strings.Contains(line, "cgrstat_reclaim_duration_seconds_bucket") && strings.Contains(line, leaf.Rel) {
					lines = append(lines, line)
				}
			}
			t.Fatalf("no exemplar on the leaf's buckets (%s):\n%s\nserve:\n%s", exemplar, strings.Join(lines, "\n"), srv.stderr)
		}
		body = scrapeOpenMetrics(t, addr)
	}
	t.Logf("%s", exemplar.FindString(body))
	if _, text := get(t, addr); strings.Contains(text, " # {") {
		t.Errorf("the text format has exemplars:\n%.1000s", text)
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve: exit %d:\n%s", code, srv.stderr)
	}
	for _, r := range held {
		r.Close()
	}
	held = nil
	l.run("unload")
}

// scrapeOpenMetrics scrapes serve as Prometheus does, asking for
// OpenMetrics first.
func scrapeOpenMetrics(t *testing.T, addr string) string {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text") {
		t.Fatalf("OpenMetrics scrape: %d %s %v\n%.300s", resp.StatusCode, resp.Header.Get("Content-Type"), err, b)
	}
	return string(b)
}
