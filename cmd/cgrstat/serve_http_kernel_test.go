package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// TestKernelServeMethods: only GET scrapes. POST answers 405, and HEAD
// answers 200 without a scrape (a scrape's walk holds cgroup_mutex in walk
// mode): with the pin path's lock held exclusively, which every scrape
// waits for, HEAD still answers at once while GET waits. serve's log says
// whether it loaded the collectors, and so whether it unloads them on exit.
func TestKernelServeMethods(t *testing.T) {
	l := newLab(t)
	args := []string{"serve", "--pin-path", l.pinPath, "--depth=1", "--web.listen-address=127.0.0.1:0"}
	srv := startCLI(t, args...)
	addr := srv.serveAddr(t)
	if !strings.Contains(srv.stderr.String(), `msg="loaded the collectors; unloading them on exit" pin_path=`+l.pinPath) {
		t.Errorf("serve that loaded does not say so:\n%s", srv.stderr)
	}
	other := startCLI(t, args...)
	other.serveAddr(t)
	if !strings.Contains(other.stderr.String(), `msg="using the collectors already loaded; leaving them loaded on exit" pin_path=`+l.pinPath) {
		t.Errorf("serve on a loaded pin path does not say it uses that load:\n%s", other.stderr)
	}
	if code := other.stop(t); code != 0 {
		t.Errorf("second serve exited %d:\n%s", code, other.stderr)
	}
	if _, err := loader.ReadRecord(l.pinPath); err != nil {
		t.Errorf("the serve that did not load unloaded: %v", err)
	}

	url := "http://" + addr + "/metrics"
	resp, body := request(t, http.MethodPost, url, 10*time.Second)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" || strings.Contains(body, "cgrstat_") {
		t.Errorf("POST: %s, Allow %q, body %q; want 405, GET, HEAD, no metrics", resp.Status, resp.Header.Get("Allow"), body[:min(len(body), 200)])
	}

	unlock, err := readout.Lock(context.Background(), l.pinPath, true)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, body = request(t, http.MethodHead, url, 5*time.Second)
	if resp.StatusCode != http.StatusOK || body != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("HEAD: %s, Content-Type %q, %d bytes of body; want 200, the text format, no body", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
	t.Logf("HEAD answered in %v with the lock held", time.Since(start).Round(time.Millisecond))
	// The lock does hold a scrape back: HEAD above did not scrape.
	if _, err := (&http.Client{Timeout: time.Second}).Get(url); err == nil {
		t.Error("GET answered while the pin path was locked exclusively: the HEAD check above proves nothing")
	}
	unlock()
	if resp, body := request(t, http.MethodGet, url, 30*time.Second); resp.StatusCode != http.StatusOK || !strings.Contains(body, "cgrstat_memcg_reclaims_total{") {
		t.Errorf("GET after the lock: %s, %d bytes", resp.Status, len(body))
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d:\n%s", code, srv.stderr)
	}
}

func request(t *testing.T, method, url string, timeout time.Duration) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
