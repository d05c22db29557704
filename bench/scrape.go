package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgrstat/cgrstat/internal/syncbuf"
)

// Scrape compares a scrape of `cgrstat serve` (the binary, every cgroup of
// the tree exported) with an in-process read --all of the same tree, timed
// alternately; then scrapes it many times and reports its memory.
type Scrape struct {
	Mode        string  `json:"mode"`
	N           int     `json:"n"`
	ScrapeNS    []int64 `json:"scrape_ns"`
	InProcessNS []int64 `json:"in_process_read_all_ns"`
	BodyBytes   int     `json:"body_bytes"`
	// Scrapes is how many scrapes the memory run made; RSSAfterKiB is
	// serve's own process_resident_memory_bytes at the last one, MaxRSSKiB
	// its peak over its life (through the launcher, see rss.go).
	Scrapes     int   `json:"scrapes"`
	RSSAfterKiB int64 `json:"rss_after_scrapes_kib"`
	MaxRSSKiB   int64 `json:"max_rss_kib"`
	// CompareNS are the scrapes of another cgrstat's serve (-compare),
	// timed in the same turns.
	CompareNS []int64 `json:"compare_scrape_ns,omitempty"`
}

// Ratio is a scrape's median cost over an in-process read --all's.
func (s Scrape) Ratio() float64 {
	return float64(median(s.ScrapeNS)) / float64(max(median(s.InProcessNS), 1))
}

// scrape runs serve on t's top through the launcher and measures it.
func (b *bench) scrape(s *session, t *tree) (Scrape, error) {
	sc := Scrape{Mode: string(s.mode), N: t.n}
	srv, err := b.startServe(b.cfg.CLI, t)
	if err != nil {
		return sc, err
	}
	defer srv.kill()
	var body string
	scrape := timed{sample: &sc.ScrapeNS,
		run: func() (err error) {
			body, err = get(srv.url)
			return err
		},
		check: func() error {
			sc.BodyBytes = len(body)
			return exportsAll(body, t.n)
		}}
	turns := []timed{scrape, timedInProcess(&sc.InProcessNS, s, t)}
	if b.cfg.Compare != "" {
		other, err := b.startServe(b.cfg.Compare, t)
		if err != nil {
			return sc, err
		}
		defer other.kill()
		var otherBody string
		turns = append(turns, timed{sample: &sc.CompareNS,
			run: func() (err error) {
				otherBody, err = get(other.url)
				return err
			},
			check: func() error { return exportsAll(otherBody, t.n) }})
	}
	if err := timeTurns(b.turns(t.n), turns...); err != nil {
		return sc, err
	}
	for sc.Scrapes = 0; sc.Scrapes < b.cfg.Scrapes; sc.Scrapes++ {
		if body, err = get(srv.url); err != nil {
			return sc, err
		}
	}
	if sc.RSSAfterKiB, err = residentKiB(body); err != nil {
		return sc, err
	}
	sc.MaxRSSKiB, err = srv.stop()
	return sc, err
}

var exportedLine = regexp.MustCompile(`(?m)^cgrstat_exported_cgroups (\d+)$`)

// exportsAll checks that a scrape exported every cgroup of the tree.
func exportsAll(body string, n int) error {
	m := exportedLine.FindStringSubmatch(body)
	if m == nil || m[1] != strconv.Itoa(n) {
		return fmt.Errorf("a scrape exported %v cgroups, the tree has %d", m, n)
	}
	return nil
}

var residentLine = regexp.MustCompile(`(?m)^process_resident_memory_bytes (\S+)$`)

func residentKiB(body string) (int64, error) {
	m := residentLine.FindStringSubmatch(body)
	if m == nil {
		return 0, fmt.Errorf("no process_resident_memory_bytes in the scrape")
	}
	f, err := strconv.ParseFloat(m[1], 64)
	return int64(f / 1024), err
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("scrape: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return string(b), err
}

// served is serve running under the launcher.
type served struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncbuf.Buffer
}

// startServe runs serve of the cgrstat binary cli.
func (b *bench) startServe(cli string, t *tree) (*served, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	srv := &served{stderr: &syncbuf.Buffer{}}
	srv.cmd = exec.Command(self, cli, "--pin-path", b.pinPath, "serve", t.top.Path, "--depth=-1",
		"--web.listen-address=127.0.0.1:0")
	srv.cmd.Env = append(os.Environ(), launchEnv+"=1")
	srv.cmd.Stderr = srv.stderr
	srv.cmd.WaitDelay = 5 * time.Second
	if err := srv.cmd.Start(); err != nil {
		return nil, err
	}
	listening := regexp.MustCompile(`msg="Listening on" address=(\S+)`)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := listening.FindStringSubmatch(srv.stderr.String()); m != nil {
			srv.url = "http://" + m[1] + "/metrics"
			return srv, nil
		}
	}
	srv.kill()
	return nil, fmt.Errorf("serve did not listen within a minute: %s", srv.stderr.String())
}

// stop ends serve with SIGTERM, as systemd does, and returns its peak RSS.
func (s *served) stop() (int64, error) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.cmd.Wait(); err != nil {
		return 0, fmt.Errorf("serve: %w: %s", err, s.stderr.String())
	}
	var kib int64
	_, after, ok := strings.Cut(s.stderr.String(), launchMarker)
	if _, err := fmt.Sscanf(after, "%d", &kib); !ok || err != nil {
		return 0, fmt.Errorf("no peak RSS from serve's launcher in %q", s.stderr.String())
	}
	return kib, nil
}

// kill is for the error paths and the -compare serve: the process is gone
// after it. SIGTERM first, which the launcher passes on: killing the
// launcher alone left serve running, holding stderr's pipe, and Wait
// waiting for it.
func (s *served) kill() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done // at most WaitDelay more
	}
}
