package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// Two pods of one container each, named as the kubelet's cgroupfs driver
// names them, so that serve's pod identity (cgrstat_cgroup_info) can
// recognise them. Container a reclaims three times what b does.
const (
	// podA is identity_kernel_test.go's burstable pod.
	otherPod   = "7d1e4c2a-5b6f-4a8e-9c0d-1e2f3a4b5c6d"
	containerA = "3f9c2a1b8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b"
	containerB = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	podSpec    = `stress: {size: 4MiB}
children:
  - name: kubepods
    children:
      - name: burstable
        children:
          - name: pod` + podA + `
            children: [{name: ` + containerA + `, stress: {size: 12MiB}}]
          - name: pod` + otherPod + `
            children: [{name: ` + containerB + `}]
`
)

// TestKernelDashboardQueries: a real Prometheus loads the shipped rules
// and scrapes a real serve while containers of two pod-shaped cgroups
// reclaim; then every query of the shipped dashboard (its variables given
// concrete values) and every rule runs through Prometheus' HTTP API. Every
// query succeeds, the panels that should show the stressed container do,
// and no rule reports an evaluation error. With CGRSTAT_DASHBOARD_PNG set
// to a file name, the main panel's data is drawn there (README's picture).
func TestKernelDashboardQueries(t *testing.T) {
	promBin := needTool(t, "prometheus")
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rules); err != nil {
		t.Skipf("the rules are not here (kernel lab guests carry test binaries only): %v", err)
	}
	d := readDashboard(t)
	l := newLab(t)
	path, parent, topRel := l.createTree(podSpec)

	// Every reclaim may be an exemplar: the stress's are short.
	srv := startCLI(t, "serve", topRel, "--depth=-1", "--pin-path", l.pinPath, "--web.listen-address", "127.0.0.1:0", "--exemplars.min=0")
	target := srv.serveAddr(t)
	prom := startPrometheus(t, promBin, target, rules)
	prom.waitUp(t)

	// Reclaim over several scrapes, so that rates see it grow; for the
	// README's picture, over a minute or so.
	png := os.Getenv("CGRSTAT_DASHBOARD_PNG")
	rounds := 4
	if png != "" {
		rounds = 20
	}
	from := time.Now()
	for range rounds {
		l.run("stress", "-f", path, parent)
		time.Sleep(2 * time.Second)
	}
	var read struct{ Cgroups []reclaim.Stat }
	if err := json.Unmarshal([]byte(l.run("read", "--all", "--json", topRel)), &read); err != nil {
		t.Fatal(err)
	}
	topPath := read.Cgroups[0].Path
	leafA := topPath + "/kubepods/burstable/pod" + podA + "/" + containerA
	waitForData(t, prom, fmt.Sprintf(`cgroup:cgrstat_reclaim_seconds:rate5m{cgroup=%q} > 0`, leafA))
	to := time.Now()
	// A writer of the test's own in container a, under LimitedLeaf's limit
	// (at 8 MiB, the writer, a Go binary, was OOM-killed on the v1 host
	// once): its events reach serve while it and the container live
	// (stress's v1 children and scratch cgroups are often gone by then:
	// the stream wakes a reader only every 100 ms).
	container := l.h.Cgroup(leafA)
	testenv.SetLimit(t, l.h, container)
	pid, comm := testenv.WriteIn(t, container, 48<<20)
	checkExemplars(t, prom, leafA, from, pid, comm)

	vars := map[string]string{
		"instance":        regexp.QuoteMeta(target),
		"cgroup":          regexp.QuoteMeta(topPath) + "(/.*)?",
		"depth":           ".*",
		"pod":             ".*",
		"container":       ".*",
		"__rate_interval": "4s", // Grafana's: 4 scrape intervals at least
		"datasource":      "prometheus",
	}
	identity := strings.Contains(scrape(t, target), "cgrstat_cgroup_info")
	if !identity {
		t.Log("serve exports no cgrstat_cgroup_info (pod identity has not landed): the pod panels are queried, not checked for data")
	}
	stressed := map[string]bool{}
	for p := leafA; len(p) >= len(topPath); p = filepath.Dir(p) {
		stressed[p] = true
	}

	check := panelCheck{leaf: leafA, stressed: stressed, identity: identity,
		// v2 stress writes memory.reclaim; v1 stress lowers the scratch
		// cgroup's limit: charge-time reclaim against a hard limit, which
		// is cause max.
		causes: map[string]bool{"proactive": true}}
	if l.h.Version == 1 {
		check.causes = map[string]bool{"max": true}
	}
	queries, withData := 0, 0
	for _, p := range d.queryPanels() {
		want, ok := panelWants[p.Title]
		if !ok {
			t.Errorf("panel %q: the test has no expectation for it", p.Title)
			continue
		}
		for _, tg := range p.Targets {
			expr := expand(tg.Expr, vars)
			var res []promSeries
			if tg.Instant {
				res = prom.api(t, "/api/v1/query", url.Values{"query": {expr}, "time": {apiTime(to)}})
			} else {
				res = prom.api(t, "/api/v1/query_range", url.Values{"query": {expr}, "start": {apiTime(from)},
					"end": {apiTime(to)}, "step": {"2"}})
			}
			queries++
			if hasData(res) {
				withData++
			}
			t.Logf("%s/%s: %d series, data %v", p.Title, tg.RefID, len(res), hasData(res))
			if tg.Exemplar {
				ex := prom.exemplars(t, expr, from)
				if len(ex) == 0 {
					t.Errorf("panel %q query %s: no exemplars\n%s", p.Title, tg.RefID, expr)
				}
				t.Logf("%s/%s: exemplars in %d series", p.Title, tg.RefID, len(ex))
			}
			if err := want(res, check); err != nil {
				t.Errorf("panel %q query %s: %v\n%s", p.Title, tg.RefID, err, expr)
			}
			if p.Title == mainPanel {
				if png != "" {
					writePanelPNG(t, png, p.Title, res, filepath.Dir(topPath), from, to)
				}
			}
		}
	}
	t.Logf("dashboard: %d of %d queries returned data", withData, queries)

	// The depth variable at the containers' depth: siblings only, the two
	// containers and nothing above them.
	depth := strings.Count(leafA, "/")
	vars["depth"] = depthValue(t, d, depth)
	main := expand(d.queryPanels()[0].Targets[0].Expr, vars)
	var got []string
	for _, s := range prom.api(t, "/api/v1/query", url.Values{"query": {main}, "time": {apiTime(to)}}) {
		got = append(got, s.Metric["cgroup"])
	}
	slices.Sort(got)
	leafB := topPath + "/kubepods/burstable/pod" + otherPod + "/" + containerB
	if want := []string{leafA, leafB}; !slices.Equal(got, want) {
		t.Errorf("main panel at depth %d (%s): %v; want the two containers %v", depth, vars["depth"], got, want)
	}

	// The variables' own queries, as Grafana's label_values() asks them.
	for _, v := range []struct{ label, match, want string }{
		{"instance", "cgrstat_flush_mode_info", target},
		{"pod_uid", fmt.Sprintf(`cgrstat_cgroup_info{instance=~%q}`, vars["instance"]), podA},
		{"container_id", fmt.Sprintf(`cgrstat_cgroup_info{instance=~%q}`, vars["instance"]), containerA},
	} {
		values := prom.labelValues(t, v.label, v.match)
		if (v.label == "instance" || identity) && !strings.Contains(strings.Join(values, " "), v.want) {
			t.Errorf("variable values of %s: %v; want %s among them", v.label, values, v.want)
		}
	}

	// Every rule evaluated without error, and its expression runs.
	evaluated := prom.waitRulesEvaluated(t, len(readRules(t)))
	// Every recording rule has data under reclaim but the throttle's,
	// which have none since nothing here sets memory.high (promtool's
	// cases give them data); an alert's expression has data only when its
	// condition holds, which nothing here makes hold for long (the alerts
	// wait 5 to 15 minutes).
	records, alerts, alertsWithData := 0, 0, 0
	for _, r := range readRules(t) {
		data := hasData(prom.api(t, "/api/v1/query", url.Values{"query": {r.Expr}, "time": {apiTime(time.Now())}}))
		throttle := strings.Contains(r.Expr, "cgrstat_throttle_")
		switch {
		case r.Record != "" && throttle && data:
			t.Errorf("recording rule %s: data, but nothing here is throttled", r.Record)
		case r.Record != "" && throttle:
			records++
		case r.Record != "" && !data:
			t.Errorf("recording rule %s: no data under reclaim", r.Record)
		case r.Record != "":
			records++
		default:
			alerts++
			if data {
				alertsWithData++
				t.Logf("alert %s: its condition holds now", r.Alert)
			}
		}
	}
	t.Logf("rules: %d evaluated without error; %d recording rules returned data; %d of %d alert conditions hold",
		evaluated, records, alertsWithData, alerts)
	t.Logf("alerts: %s", prom.get(t, "/api/v1/alerts"))
}

// checkExemplars: Prometheus (exemplar storage on) holds exemplars of the
// container's latency buckets, as serve attached them in the OpenMetrics
// format: each names a task by a pid and a comm, with a latency within its
// bucket, since the stress began, and one names the writer (pid, comm).
// The path of a v1 stress's target (its scratch cgroup below the
// container), where one is there, is longer than an exemplar may be (128
// runes): it comes shortened, and Prometheus takes it.
func checkExemplars(t *testing.T, prom *prometheus, cgroup string, from time.Time, pid int, comm string) {
	t.Helper()
	q := fmt.Sprintf(`cgrstat_reclaim_duration_seconds_bucket{cgroup=%q}`, cgroup)
	writer := func(got []promExemplars) bool {
		for _, s := range got {
			for _, e := range s.Exemplars {
				if e.Labels["pid"] == strconv.Itoa(pid) && e.Labels["comm"] == comm {
					return true
				}
			}
		}
		return false
	}
	var got []promExemplars
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if got = prom.exemplars(t, q, from); writer(got) || time.Now().After(deadline) {
			break
		}
	}
	if !writer(got) {
		t.Errorf("Prometheus has no exemplar of %s naming the writer (pid %d, comm %s): %+v", q, pid, comm, got)
	}
	if len(got) == 0 {
		t.Errorf("Prometheus stored no exemplars of %s", q)
		return
	}
	n := 0
	for _, s := range got {
		le, err := strconv.ParseFloat(s.SeriesLabels["le"], 64)
		if err != nil {
			t.Errorf("exemplars of a series without le: %v", s.SeriesLabels)
			continue
		}
		for _, e := range s.Exemplars {
			n++
			v, err := strconv.ParseFloat(e.Value, 64)
			pid, perr := strconv.Atoi(e.Labels["pid"])
			if err != nil || perr != nil || pid <= 0 || e.Labels["comm"] == "" || v <= 0 || v > le ||
				e.Timestamp < float64(from.Unix()) {
				t.Errorf("exemplar %+v of bucket le=%s: want a pid, a comm, a latency within the bucket, a time since %s",
					e, s.SeriesLabels["le"], from.Format(time.TimeOnly))
			}
		}
	}
	t.Logf("Prometheus holds %d exemplars in %d buckets of %s, e.g. %+v", n, len(got), cgroup, got[0].Exemplars[0])
}

// depthValue is the value the dashboard's depth variable has for depth n.
func depthValue(t *testing.T, d dashboard, n int) string {
	t.Helper()
	for _, v := range d.Templating.List {
		if v.Name != "depth" {
			continue
		}
		q, _ := v.Query.(string)
		for _, opt := range strings.Split(q, ",") {
			if text, value, ok := strings.Cut(opt, " : "); ok && strings.TrimSpace(text) == strconv.Itoa(n) {
				return strings.TrimSpace(value)
			}
		}
		t.Fatalf("the depth variable has no option %d: %q", n, q)
	}
	t.Fatal("no depth variable")
	return ""
}

// mainPanel is the dashboard's first panel, the one the README shows.
const mainPanel = "Cgroups stalling most (reclaim seconds per second, top 10)"

// panelCheck is what a panel's expectation knows of the run.
type panelCheck struct {
	leaf     string          // the container that reclaimed most
	stressed map[string]bool // it and its ancestors in the tree
	identity bool            // serve exports cgrstat_cgroup_info
	causes   map[string]bool // the causes stress makes reclaim in
}

// panelWants says, per panel title, what each of its queries must return
// under induced reclaim. A panel without an entry fails the test.
var panelWants = map[string]func([]promSeries, panelCheck) error{
	mainPanel: showsLeaf,
	"Reclaim latency p50 / p90 / p99 and longest (busiest cgroup of the selection)": showsStressed,
	"Reclaim latency heatmap (busiest cgroup of the selection)":                     positive,
	"Stall by cause, and stall its limits forced (busiest cgroup of the selection)": func(res []promSeries, c panelCheck) error {
		if err := positive(res, c); err != nil {
			return err
		}
		for _, s := range res {
			if cause, ok := s.Metric["cause"]; ok && !c.causes[cause] && s.max() > 0 {
				return fmt.Errorf("cause %s stalled, stress causes only %v: %v", cause, c.causes, s.Metric)
			}
		}
		return nil
	},
	"Cgroups whose limits force reclaim most (top 10)": showsLeaf,
	// Nothing here sets memory.high, so nothing is throttled: the
	// throttle panels run and are empty (and on a host that refuses
	// fentry serve exports no throttle series at all).
	"Cgroups throttled most above memory.high (sleep seconds per second, top 10)": noData,
	"Throttle sleep p99 (the 10 cgroups throttled most)":                          noData,
	"Pages reclaimed per second (top 10)":                                         showsLeaf,
	"Pods and containers stalling most (top 10)":                                  showsPod,
	"p99 reclaim latency by pod and container (top 10)":                           showsPod,
	"Flush mode":                  positive,
	"Lost updates":                hasSeries,
	"Map fill against capacity":   positive,
	"Scrape duration and cgroups": positive,
}

func noData(res []promSeries, _ panelCheck) error {
	if hasData(res) {
		return fmt.Errorf("data where none is expected: %v", res)
	}
	return nil
}

func hasSeries(res []promSeries, _ panelCheck) error {
	if !hasData(res) {
		return fmt.Errorf("no data")
	}
	return nil
}

func positive(res []promSeries, c panelCheck) error {
	for _, s := range res {
		if s.max() > 0 {
			return nil
		}
	}
	return fmt.Errorf("no value above 0 in %d series", len(res))
}

// showsLeaf: the stressed container is among the series, above 0.
func showsLeaf(res []promSeries, c panelCheck) error {
	for _, s := range res {
		if s.Metric["cgroup"] == c.leaf && s.max() > 0 {
			return nil
		}
	}
	return fmt.Errorf("%s is not among %d series with a value above 0", c.leaf, len(res))
}

// showsStressed: data for the stressed container or an ancestor of it in
// the tree (the busiest cgroup of the selection), and nothing else.
func showsStressed(res []promSeries, c panelCheck) error {
	if err := positive(res, c); err != nil {
		return err
	}
	for _, s := range res {
		if !c.stressed[s.Metric["cgroup"]] {
			return fmt.Errorf("series of %s, not the stressed container nor its ancestor", s.Metric["cgroup"])
		}
	}
	return nil
}

// showsPod: the stressed container's pod, once serve exports identity.
func showsPod(res []promSeries, c panelCheck) error {
	if !c.identity {
		return nil
	}
	for _, s := range res {
		if s.Metric["pod_uid"] == podA && s.max() > 0 {
			return nil
		}
	}
	return fmt.Errorf("pod %s is not among %d series", podA, len(res))
}

// promSeries is one series of a query's answer: its labels and values
// (one for an instant query), NaN left out.
type promSeries struct {
	Metric map[string]string
	Values []float64
	Times  []float64
}

func (s promSeries) max() float64 {
	m := math.Inf(-1)
	for _, v := range s.Values {
		m = math.Max(m, v)
	}
	return m
}

func hasData(res []promSeries) bool {
	for _, s := range res {
		if len(s.Values) > 0 {
			return true
		}
	}
	return false
}

func apiTime(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1e3, 'f', 3, 64) }

// api runs a query (instant or range) and fails the test unless
// Prometheus answers success.
func (p *prometheus) api(t *testing.T, path string, params url.Values) []promSeries {
	t.Helper()
	resp, err := http.PostForm("http://"+p.addr+path, params)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error, ErrorType string
		Data                     struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  []any
				Values [][]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("%s %s: %v", path, params.Get("query"), err)
	}
	if r.Status != "success" {
		t.Errorf("%s %s: %s: %s %s", path, params.Get("query"), r.Status, r.ErrorType, r.Error)
		return nil
	}
	var out []promSeries
	for _, s := range r.Data.Result {
		points := s.Values
		if s.Value != nil {
			points = [][]any{s.Value}
		}
		ps := promSeries{Metric: s.Metric}
		for _, pt := range points {
			v, err := strconv.ParseFloat(pt[1].(string), 64)
			if err != nil {
				t.Fatal(err)
			}
			if !math.IsNaN(v) {
				ps.Values = append(ps.Values, v)
				ps.Times = append(ps.Times, pt[0].(float64))
			}
		}
		out = append(out, ps)
	}
	return out
}

// labelValues is what Grafana's label_values(match, label) asks.
func (p *prometheus) labelValues(t *testing.T, label, match string) []string {
	t.Helper()
	var r struct {
		Status string
		Data   []string
	}
	body := p.get(t, "/api/v1/label/"+label+"/values?"+url.Values{"match[]": {match}}.Encode())
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		t.Errorf("label values of %s for %s: %v %s", label, match, err, body)
	}
	return r.Data
}

// waitForData waits until an instant query returns a series.
func waitForData(t *testing.T, p *prometheus, q string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !hasData(p.api(t, "/api/v1/query", url.Values{"query": {q}})) {
		if time.Now().After(deadline) {
			t.Fatalf("no result within 30s for %s", q)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitRulesEvaluated waits until Prometheus has evaluated all n rules at
// least once, fails for each that reports an error, and returns how many
// evaluated cleanly.
func (p *prometheus) waitRulesEvaluated(t *testing.T, n int) int {
	t.Helper()
	type ruleState struct {
		Name, Health, LastError, Type, State string
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var r struct {
			Status string
			Data   struct{ Groups []struct{ Rules []ruleState } }
		}
		body := p.get(t, "/api/v1/rules")
		if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
			t.Fatalf("rules: %v %s", err, body)
		}
		var all []ruleState
		for _, g := range r.Data.Groups {
			all = append(all, g.Rules...)
		}
		ok, unknown := 0, 0
		for _, rs := range all {
			switch rs.Health {
			case "ok":
				ok++
			case "unknown":
				unknown++
			}
		}
		if len(all) == n && unknown == 0 || time.Now().After(deadline) {
			if len(all) != n {
				t.Errorf("Prometheus loaded %d rules, the file has %d", len(all), n)
			}
			for _, rs := range all {
				if rs.Health != "ok" || rs.LastError != "" {
					t.Errorf("rule %s: health %s, error %q", rs.Name, rs.Health, rs.LastError)
				}
			}
			return ok
		}
		time.Sleep(500 * time.Millisecond)
	}
}
