package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/syncbuf"
	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// TestKernelServePrometheus: a real Prometheus scrapes a real serve every
// second while the tree reclaims; afterwards Prometheus holds, for every
// cgroup of the tree, the numbers read --json reports.
func TestKernelServePrometheus(t *testing.T) {
	promBin := needTool(t, "prometheus")
	l := newLab(t)
	path, top := l.writeSpec(deepSpec)
	parent := "--parent=" + l.parent().Rel
	l.run("hierarchy", "create", "-f", path, parent)
	t.Cleanup(func() { cli(t, "hierarchy", "destroy", "-f", path, parent, "--kill", "--pin-path", l.pinPath) })
	topRel := l.parent().Child(top).Rel

	// serve loads the collectors itself: nothing is loaded at the pin path.
	srv := startCLI(t, "serve", topRel, "--depth=-1", "--pin-path", l.pinPath, "--web.listen-address", "127.0.0.1:0")
	target := srv.serveAddr(t)
	prom := startPrometheus(t, promBin, target)
	prom.waitUp(t)

	l.run("stress", "-f", path, parent)
	var read struct{ Cgroups []reclaim.Stat }
	if err := json.Unmarshal([]byte(l.run("read", "--all", "--json", topRel)), &read); err != nil {
		t.Fatal(err)
	}
	if len(read.Cgroups) != 8 || read.Cgroups[0].Count == 0 {
		t.Fatalf("read --json: %+v; want 8 cgroups with reclaim at the top", read.Cgroups)
	}
	want := expectedSeries(read.Cgroups)
	// Within one scrape of the read: the scrape interval (1s) and timeout
	// (1s), and a second of slack for a busy machine.
	start := time.Now()
	var got map[string]float64
	for time.Since(start) < 3*time.Second {
		got = prom.query(t, `{__name__=~"cgrstat_.*", cgroup!=""}`)
		if equalSeries(got, want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !equalSeries(got, want) {
		logDiff(t, got, want)
		t.Logf("targets: %s", prom.get(t, "/api/v1/targets"))
		t.Fatal("Prometheus does not hold what read --json reports")
	}
	t.Logf("Prometheus matched read --json for %d series %s after the read", len(want), time.Since(start).Round(time.Millisecond))

	assertHelp(t, target)
	assertConcurrentScrapes(t, target, 8)
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d on SIGTERM:\n%s", code, srv.stderr)
	}
	if _, err := os.Stat(l.pinPath); err == nil {
		t.Errorf("serve loaded the collectors but left %s behind", l.pinPath)
	}
}

// series names one series by its name and labels, as the test keys them.
func series(name, cgroup string, more ...string) string {
	key := fmt.Sprintf("%s{cgroup=%q", name, cgroup)
	for i := 0; i+1 < len(more); i += 2 {
		key += fmt.Sprintf(",%s=%q", more[i], more[i+1])
	}
	return key + "}"
}

// expectedSeries is what serve must export for stats, computed from
// read --json's numbers: the memory-cgroup count always; the other
// memory-cgroup totals and the maximum once it is above 0; count, time,
// pages and histogram of a cause, and forced reclaim, once there was such a
// reclaim. A histogram bucket is the sum of the kernel buckets entirely at
// or below its bound.
func expectedSeries(stats []reclaim.Stat) map[string]float64 {
	want := map[string]float64{}
	sec := func(ns uint64) float64 { return float64(ns) / 1e9 }
	// A histogram's series: sum, count, +Inf and one bucket per exported bound.
	hist := func(name, path string, h *reclaim.Hist, sumNS uint64, labels ...string) {
		want[series(name+"_sum", path, labels...)] = sec(sumNS)
		want[series(name+"_count", path, labels...)] = float64(h.Total())
		want[series(name+"_bucket", path, append(labels, "le", "+Inf")...)] = float64(h.Total())
		for e := 10; e <= 36; e += 2 {
			var n uint64
			for i, k := range h {
				if _, hi := reclaim.BucketBounds(i); hi <= 1<<e {
					n += k
				}
			}
			want[series(name+"_bucket", path, append(labels, "le", leLabel(float64(uint64(1)<<e)/1e9))...)] = float64(n)
		}
	}
	for _, s := range stats {
		want[series("cgrstat_memcg_reclaims_total", s.Path)] = float64(s.Count)
		for c := reclaim.Cause(0); c < reclaim.NrCauses; c++ {
			if s.Causes[c].Count > 0 {
				want[series("cgrstat_reclaims_total", s.Path, "cause", c.String())] = float64(s.Causes[c].Count)
				want[series("cgrstat_reclaim_seconds_total", s.Path, "cause", c.String())] = sec(s.Causes[c].DelayNS)
				want[series("cgrstat_reclaimed_pages_total", s.Path, "cause", c.String())] = float64(s.Causes[c].Reclaimed)
			}
		}
		// Absent, not 0, where the kernel does not let it be measured.
		if s.Throttle.Measured && s.Throttle.Count > 0 {
			want[series("cgrstat_throttle_seconds_total", s.Path)] = sec(s.Throttle.DelayNS)
			want[series("cgrstat_throttles_total", s.Path)] = float64(s.Throttle.Count)
			hist("cgrstat_throttle_duration_seconds", s.Path, s.Throttle.Hist, s.Throttle.DelayNS)
		}
		if s.Forced.Count > 0 {
			want[series("cgrstat_forced_reclaim_seconds_total", s.Path)] = sec(s.Forced.DelayNS)
			want[series("cgrstat_forced_reclaims_total", s.Path)] = float64(s.Forced.Count)
		}
		if s.Count > 0 {
			want[series("cgrstat_memcg_reclaim_seconds_total", s.Path)] = sec(s.DelayNS)
			want[series("cgrstat_memcg_reclaimed_pages_total", s.Path)] = float64(s.Reclaimed)
			want[series("cgrstat_reclaim_max_seconds", s.Path)] = sec(s.MaxNS)
		}
		for _, d := range s.Dists() {
			if d.Counters.Count == 0 {
				continue
			}
			hist("cgrstat_reclaim_duration_seconds", s.Path, d.Hist, d.Counters.DelayNS, "cause", d.Name)
		}
	}
	return want
}

// leLabel is one form of a bound for both sides of the comparison.
func leLabel(le float64) string { return strconv.FormatFloat(le, 'g', -1, 64) }

func logDiff(t *testing.T, got, want map[string]float64) {
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Logf("%s: Prometheus %v (present %v), read --json %v", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Logf("%s: unexpected in Prometheus", k)
		}
	}
}

func equalSeries(got, want map[string]float64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// prometheus is a Prometheus server of the test's own.
type prometheus struct{ addr string }

// startPrometheus starts a Prometheus that scrapes target every second as
// job cgrstat and evaluates rules every second, storing exemplars (it
// asks for OpenMetrics first, which carries them). Each of more is either a
// further scrape job, given as job=target, or a rule file (an absolute
// path).
func startPrometheus(t *testing.T, bin, target string, more ...string) *prometheus {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	body := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"+
		"scrape_configs:\n  - job_name: cgrstat\n    static_configs: [{targets: [%q]}]\n", target)
	var ruleFiles []string
	for _, m := range more {
		job, target, ok := strings.Cut(m, "=")
		if !ok {
			ruleFiles = append(ruleFiles, m)
			continue
		}
		body += fmt.Sprintf("  - job_name: %s\n    static_configs: [{targets: [%q]}]\n", job, target)
	}
	if len(ruleFiles) > 0 {
		quoted, _ := json.Marshal(ruleFiles) // a YAML flow sequence
		body += "rule_files: " + string(quoted) + "\n"
	}
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: freeAddr(t)}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn", "--enable-feature=exemplar-storage")
	var logs syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// samples runs an instant query.
func (p *prometheus) samples(t *testing.T, q string) []promSample {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v, status %q: %s", q, err, r.Status, r.Error)
	}
	var out []promSample
	for _, s := range r.Data.Result {
		v, err := strconv.ParseFloat(s.Value[1].(string), 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, promSample{s.Metric, v})
	}
	return out
}

// promExemplars are the exemplars of one series, as
// /api/v1/query_exemplars answers.
type promExemplars struct {
	SeriesLabels map[string]string
	Exemplars    []struct {
		Labels    map[string]string
		Value     string
		Timestamp float64
	}
}

// exemplars returns the exemplars Prometheus stored for the series q
// selects, from start until now.
func (p *prometheus) exemplars(t *testing.T, q string, start time.Time) []promExemplars {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/query_exemplars?" + url.Values{"query": {q},
		"start": {apiTime(start)}, "end": {apiTime(time.Now())}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          []promExemplars
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("exemplars of %s: %v, status %q: %s", q, err, r.Status, r.Error)
	}
	return r.Data
}

// query runs an instant query and returns name{cgroup="..."} → value.
func (p *prometheus) query(t *testing.T, q string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, s := range p.samples(t, q) {
		var more []string
		for _, l := range []string{"cause", "le"} {
			if v, ok := s.Metric[l]; ok {
				if l == "le" && v != "+Inf" {
					f, _ := strconv.ParseFloat(v, 64)
					v = leLabel(f)
				}
				more = append(more, l, v)
			}
		}
		out[series(s.Metric["__name__"], s.Metric["cgroup"], more...)] = s.Value
	}
	return out
}

// waitUp waits for the first successful scrape: Prometheus hands new
// targets to its scrapers only every 5s.
func (p *prometheus) waitUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.get(t, "/api/v1/targets"), `"health":"up"`) {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape serve within 30s: %s", p.get(t, "/api/v1/targets"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *prometheus) get(t *testing.T, path string) string {
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// scrape fetches serve's /metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	body, err := tryScrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func tryScrape(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape: %d %v\n%s", resp.StatusCode, err, b)
	}
	return string(b), nil
}

func assertHelp(t *testing.T, addr string) {
	t.Helper()
	body := scrape(t, addr)
	// Every family with a cgroup label (those present: some appear with
	// their first reclaim) warns in its HELP.
	helps := regexp.MustCompile(`(?m)^# HELP (cgrstat_\w+) (.*)$`).FindAllStringSubmatch(body, -1)
	perCgroup := 0
	for _, h := range helps {
		if strings.HasSuffix(h[1], "_info") || !regexp.MustCompile(`(?m)^`+h[1]+`(_bucket|_sum|_count)?\{[^}]*cgroup="`).MatchString(body) {
			continue // an info series is not a total
		}
		perCgroup++
		if !strings.Contains(h[2], "do not sum a parent with its children") {
			t.Errorf("%s: HELP does not warn against summing a parent with its children", h[1])
		}
	}
	if perCgroup < 2 {
		t.Errorf("only %d per-cgroup families in the scrape", perCgroup)
	}
	for _, health := range []string{`cgrstat_flush_mode_info{mode=`, `cgrstat_map_entries{map="stats"}`,
		`cgrstat_map_capacity_entries{map="stats"}`, `cgrstat_lost_updates_total{kind="events"} 0`, "cgrstat_scrape_duration_seconds ",
		"cgrstat_throttle_measured "} {
		if !strings.Contains(body, health) {
			t.Errorf("scrape lacks %s", health)
		}
	}
}

// assertConcurrentScrapes scrapes n times at once: every scrape succeeds
// with the same per-cgroup counters (no reclaim runs meanwhile).
func assertConcurrentScrapes(t *testing.T, addr string, n int) {
	t.Helper()
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := tryScrape(addr)
			if err != nil {
				t.Error(err)
			}
			bodies[i] = perCgroup(body)
		}()
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if bodies[i] != bodies[0] {
			t.Errorf("concurrent scrapes disagree:\n%s\n---\n%s", bodies[0], bodies[i])
		}
	}
}

// perCgroup keeps the lines of per-cgroup series.
func perCgroup(body string) string {
	var keep []string
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, `{cgroup="`) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// TestKernelServeUnitCapabilities runs serve as the unit does, as root with
// only the unit's CapabilityBoundingSet (setpriv): it loads, answers a
// scrape with every cgroup, reads the event stream and names a reclaim's
// cgroups in its exemplars (without CAP_DAC_READ_SEARCH: from the task's
// /proc/PID/cgroup), and unloads on SIGTERM. Without one of those
// capabilities, loading fails.
func TestKernelServeUnitCapabilities(t *testing.T) {
	setpriv := needTool(t, "setpriv")
	if _, err := os.Stat(unitFile); err != nil {
		t.Skipf("the unit file is not here (kernel lab guests carry test binaries only): %v", err)
	}
	caps := unitCapabilities(t)
	l := newLab(t)
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	serve := func(bounding string) *cliProc {
		return startCLIWith(t, setpriv, "--bounding-set="+bounding, "--inh-caps=-all", "--",
			cliExe(t), "serve", "--pin-path", l.pinPath, "--web.listen-address=127.0.0.1:0", "--depth=1", "--exemplars.min=0")
	}
	srv := serve(bounding)
	addr := srv.serveAddr(t)
	body := scrape(t, addr)
	if !strings.Contains(body, `cgrstat_memcg_reclaims_total{cgroup="/"}`) {
		t.Errorf("serve with %v: no series for the root cgroup", caps)
	}
	// A reclaim below this test's cgroup is an exemplar of the exported
	// cgroup above it (depth 1), its target one of this test's cgroups.
	if first := strings.SplitN(l.h.Own, "/", 3); len(first) > 1 && first[1] != "" {
		waitFor(t, "serve to read the event stream", func() bool {
			return strings.Contains(srv.stderr.String(), "exemplars: reading the event stream")
		})
		_, leaf := testenv.LimitedLeaf(t, l.h)
		// The writer stays until serve has named its events from its
		// /proc/PID/cgroup: the claim under test. (Gone before serve read
		// them, a loaded machine's case, the leaf, below --depth, is in no
		// scrape to name it from either.)
		pid, comm, release := testenv.WriteAndHold(t, leaf, 48<<20)
		defer release()
		ours := regexp.MustCompile(`(?m)^cgrstat_reclaim_duration_seconds_bucket\{cause="[a-z]+",cgroup="/` + regexp.QuoteMeta(first[1]) +
			`",le="[^"]+"\} \d+ # \{comm="` + regexp.QuoteMeta(comm) + `",pid="` + strconv.Itoa(pid) + `",target="[^"]*/leaf"`)
		var om string
		for deadline := time.Now().Add(10 * time.Second); !ours.MatchString(om); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				var with []string
				for _, line := range strings.Split(om, "\n") {
					if strings.Contains(line, " # {") {
						with = append(with, line)
					}
				}
				t.Fatalf("no exemplar of this test's reclaim (%s); exemplars:\n%s\nserve:\n%s", ours, strings.Join(with, "\n"), srv.stderr)
			}
			om = scrapeOpenMetrics(t, addr)
		}
	}
	if strings.Contains(srv.stderr.String(), "without exemplars") {
		t.Errorf("serve with %v cannot read the event stream:\n%s", caps, srv.stderr)
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve with %v exited %d:\n%s", caps, code, srv.stderr)
	}
	if _, err := os.Stat(l.pinPath); err == nil {
		t.Errorf("serve with %v left %s behind", caps, l.pinPath)
	}
	for i := range caps { // each capability is needed
		less := "-all"
		for j, c := range caps {
			if j != i {
				less += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
			}
		}
		srv := serve(less)
		<-srv.done
		if srv.cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("serve without %s started: the unit grants a capability it does not need", caps[i])
		}
	}
}
