package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The Grafana dashboard and the Prometheus rules the repository ships for
// serve. These tests check them offline; TestKernelDashboardQueries runs
// every query against a real Prometheus scraping a real serve.
const (
	dashboardFile = "../../packaging/grafana/cgrstat-dashboard.json"
	rulesFile     = "../../packaging/prometheus/cgrstat-rules.yml"
	rulesTestFile = "../../packaging/prometheus/cgrstat-rules_test.yml"
)

// dashPanel is what the tests read of a dashboard panel.
type dashPanel struct {
	ID          int
	Type        string
	Title       string
	Description string
	Datasource  struct{ UID string }
	Targets     []dashTarget
}

type dashTarget struct {
	RefID        string
	Expr         string
	LegendFormat string
	Instant      bool
	Exemplar     bool // Grafana asks /api/v1/query_exemplars with Expr too
	Datasource   struct{ UID string }
}

type dashboard struct {
	Panels     []dashPanel
	Templating struct {
		List []struct {
			Name, Type string
			Query      any
			AllValue   string
		}
	}
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// queryPanels are the panels that query Prometheus (rows do not).
func (d dashboard) queryPanels() []dashPanel {
	var out []dashPanel
	for _, p := range d.Panels {
		if p.Type != "row" {
			out = append(out, p)
		}
	}
	return out
}

// expand replaces Grafana's variables as Grafana's Prometheus data source
// does for a single value: backslashes doubled, since the value lands in
// a PromQL string.
func expand(expr string, vars map[string]string) string {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, k := range names {
		v := strings.ReplaceAll(vars[k], `\`, `\\`)
		expr = strings.ReplaceAll(expr, "${"+k+"}", v)
		expr = strings.ReplaceAll(expr, "$"+k, v)
	}
	return expr
}

// rule is one recording or alerting rule of the rules file.
type rule struct {
	Record, Alert, Expr, For string
	Labels                   map[string]string
	Annotations              map[string]string
}

func readRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Groups []struct{ Rules []rule } }
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestRulesPromtool runs promtool check rules and promtool test rules on
// the shipped rules, and checks that the unit tests cover every alert both
// firing and not firing.
func TestRulesPromtool(t *testing.T) {
	promtool := needTool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", filepath.Base(rulesFile)}, {"test", "rules", filepath.Base(rulesTestFile)}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(rulesFile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}

	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	alerts := 0
	for _, r := range readRules(t) {
		if r.Alert == "" {
			continue
		}
		alerts++
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("alert %s: a case where it fires %v, one where it does not %v; want both", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if r.Annotations[a] == "" {
				t.Errorf("alert %s has no %s annotation", r.Alert, a)
			}
		}
		if r.Labels["severity"] == "" {
			t.Errorf("alert %s has no severity", r.Alert)
		}
	}
	if alerts < 5 {
		t.Errorf("%d alerts; want at least 5", alerts)
	}
}

// metricName finds the metric names a PromQL expression selects: words
// followed by { or standing alone, less PromQL's own words.
var metricName = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

var promqlWords = map[string]bool{
	"sum": true, "topk": true, "by": true, "without": true, "on": true, "and": true, "or": true, "rate": true,
	"increase": true, "histogram_quantile": true, "group_left": true, "le": true, "instance": true, "cgroup": true,
	"cause": true, "quantile": true, "pod_uid": true, "container_id": true, "job": true, "label_values": true,
	"kind": true, "mode": true, "map": true,
}

// selectedMetrics are the metric names expr reads.
func selectedMetrics(expr string) []string {
	expr = regexp.MustCompile(`"[^"]*"|\[[^\]]*\]`).ReplaceAllString(expr, "") // strings, ranges
	var out []string
	for _, w := range metricName.FindAllString(expr, -1) {
		if !promqlWords[w] && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// knownMetrics are the names serve exports (read from the exporter's
// source, so that a rename there fails here), the rules record, and
// Prometheus' own per-target series.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../../pkg/exporter/collector.go")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"up": true, "scrape_duration_seconds": true,
		// Exported by serve once pod and container identity lands
		// (issue 19); until then the pod panels are empty.
		"cgrstat_cgroup_info": true}
	for _, m := range regexp.MustCompile(`newFamily\("(\w+)"`).FindAllStringSubmatch(string(src), -1) {
		known["cgrstat_"+m[1]] = true
	}
	// The histograms' bucket series.
	for _, h := range []string{"cgrstat_reclaim_duration_seconds", "cgrstat_throttle_duration_seconds"} {
		if !known[h] {
			t.Fatalf("no metric family %s found in the exporter's source", h)
		}
		known[h+"_bucket"] = true
	}
	for _, r := range readRules(t) {
		if r.Record != "" {
			known[r.Record] = true
		}
	}
	return known
}

var cgroupLabel = regexp.MustCompile(`\bcgroup\b`)

// TestDashboard checks what a real Prometheus cannot: every panel says how
// to read it, with the hierarchical warning on per-cgroup panels, queries
// the data source variable, and reads only metrics that exist.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	known := knownMetrics(t)
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, want := range []string{"datasource", "instance", "cgroup", "depth", "pod", "container"} {
		if !vars[want] {
			t.Errorf("dashboard has no %s variable", want)
		}
	}
	panels := d.queryPanels()
	if len(panels) < 8 {
		t.Fatalf("%d panels", len(panels))
	}
	titles := map[string]bool{}
	for _, p := range panels {
		if titles[p.Title] {
			t.Errorf("two panels titled %q", p.Title)
		}
		titles[p.Title] = true
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: data source %q, not the variable", p.Title, p.Datasource.UID)
		}
		perCgroup := false
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s/%s: data source %q, not the variable", p.Title, tg.RefID, tg.Datasource.UID)
			}
			for _, m := range selectedMetrics(tg.Expr) {
				if !known[m] {
					t.Errorf("%s/%s: unknown metric %s in %s", p.Title, tg.RefID, m, tg.Expr)
				}
			}
			perCgroup = perCgroup || cgroupLabel.MatchString(tg.Expr)
		}
		switch {
		case len(p.Description) < 80:
			t.Errorf("%s: description too short to say how to read it: %q", p.Title, p.Description)
		case perCgroup && !strings.Contains(p.Description, "never sum a parent with its children"):
			t.Errorf("%s: per-cgroup panel does not warn against summing a parent with its children", p.Title)
		}
	}
	for _, r := range readRules(t) {
		for _, m := range selectedMetrics(r.Expr) {
			if !known[m] {
				t.Errorf("rule %s%s: unknown metric %s", r.Record, r.Alert, m)
			}
		}
	}
}
