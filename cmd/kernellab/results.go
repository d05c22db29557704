package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

// results is what a run proved, written as JSON (-results) for the support
// table and for CI artifacts.
type results struct {
	Date   time.Time `json:"date"`
	Commit string    `json:"commit"`
	// Partial says how the run was narrowed (-run, -pkgs, -suites, ...);
	// a support table is made only from a full run.
	Partial     string        `json:"partial,omitempty"`
	CPUs        int           `json:"cpus"`
	Parallel    int           `json:"parallel"`
	WallSeconds float64       `json:"wall_seconds"`
	Guests      []guestResult `json:"guests"`
	// KernelSubsetSkips are the tests the kernel subset leaves out, when a
	// guest ran it.
	KernelSubsetSkips []string `json:"kernel_subset_skips,omitempty"`
	// HostCgroup is the cgroup version on which this machine's make
	// hosttest, not a guest, ran the Go-side tests (-hosttest), 0 if none.
	HostCgroup int `json:"host_cgroup,omitempty"`
	// HostOnlySkips are the tests the guests that ran all-but-host left
	// to make hosttest.
	HostOnlySkips []string `json:"host_only_skips,omitempty"`
}

type guestResult struct {
	Suite   string `json:"suite"`
	Arch    string `json:"arch"`
	Release string `json:"release"`
	Cgroup  int    `json:"cgroup"`
	// Status is "pass", "fail" or "skip" (the configuration does not exist
	// on this kernel; Reason says why).
	Status string `json:"status"`
	// Tests is the subset the guest ran: "all", "kernel" (every
	// TestKernel* test but KernelSubsetSkips) or "all-but-host" (every
	// test but HostOnlySkips).
	Tests      string   `json:"tests,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Pass       int      `json:"pass"`
	Fail       int      `json:"fail"`
	Skip       int      `json:"skip"`
	TmpDir     string   `json:"tmpdir,omitempty"`
	FlushModes []string `json:"flush_modes,omitempty"`
	Seconds    float64  `json:"seconds"`
}

func toResult(g *guest) guestResult {
	r := guestResult{
		Suite: g.suite, Arch: g.arch, Release: g.kernel.Release, Cgroup: g.cgroup, Tests: g.subset,
		Pass: g.result.Pass, Fail: g.result.Fail, Skip: g.result.Skip,
		TmpDir: g.result.TmpDir, FlushModes: flushModes(g.result.Console),
		Seconds: g.elapsed.Seconds(),
	}
	switch {
	case g.skip != "":
		r.Status, r.Reason = "skip", g.skip
	case g.err != nil:
		r.Status, r.Reason = "fail", g.err.Error()
	default:
		r.Status = "pass"
	}
	return r
}

// partial says how o narrows the matrix, or "" for a full run.
func partial(o options) string {
	var why []string
	for _, f := range []struct{ name, value, full string }{
		{"-run", o.run, ""}, {"-pkgs", o.pkgs, ""}, {"-kernel", o.kernel, ""},
		{"-suites", o.suites, kernellab.DefaultSuites}, {"-cgroup", o.cgroups, "2,1"},
	} {
		if f.value != f.full {
			why = append(why, f.name+"="+f.value)
		}
	}
	return strings.Join(why, " ")
}

// commit is the tree the guests were built from, taken before the build:
// the checkout may move on while a run takes half an hour.
func writeResults(o options, commit string, guests []*guest, wall time.Duration) error {
	res := results{
		Date: time.Now().UTC().Truncate(time.Second), Commit: commit, Partial: partial(o),
		CPUs: runtime.NumCPU(), Parallel: o.parallel, WallSeconds: wall.Seconds(),
		HostCgroup: o.hostCgroup,
	}
	for _, g := range guests {
		res.Guests = append(res.Guests, toResult(g))
		if g.subset == subsetKernel && g.skip == "" {
			res.KernelSubsetSkips = goSideTests
		}
		if g.subset == subsetAllButHost && g.skip == "" {
			res.HostOnlySkips = hostOnlyTests
		}
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.results, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	fmt.Printf("kernellab: results in %s\n", o.results)
	return nil
}

func readResults(path string) (results, error) {
	var res results
	b, err := os.ReadFile(path)
	if err != nil {
		return res, fmt.Errorf("reading the lab's results (run make vmtest first): %w", err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}

// gitCommit names the tree the run tested, "-dirty" when it had changes.
func gitCommit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func summarize(guests []*guest, wall time.Duration) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUITE\tARCH\tCGROUP\tKERNEL\tTESTS\tPASSED\tFAILED\tSKIPPED\tSECONDS\tSTATUS")
	for _, g := range guests {
		r := toResult(g)
		if r.Status == "skip" {
			fmt.Fprintf(tw, "%s\t%s\tv%d\t%s\t-\t-\t-\t-\t-\tskip: %s\n", r.Suite, r.Arch, r.Cgroup, r.Release, r.Reason)
			continue
		}
		status := "ok"
		if r.Status == "fail" {
			status = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\tv%d\t%s\t%s\t%d\t%d\t%d\t%.1f\t%s\n", r.Suite, r.Arch, r.Cgroup, r.Release, r.Tests, r.Pass, r.Fail, r.Skip, r.Seconds, status)
	}
	tw.Flush()
	for _, g := range guests {
		printSkips(g.label(), g.result.Console)
	}
	failed := countFailed(guests)
	// The plain closing line CI runners look for.
	fmt.Printf("kernellab: %d passed, %d failed, %d configurations do not exist on their kernel; wall time %s\n",
		countRunnable(guests)-failed, failed, len(guests)-countRunnable(guests), wall.Round(time.Second))
}

// printSkips lists each skipped guest test with its reason (the line go
// test prints before "--- SKIP"), so that no skip goes unseen in CI logs.
func printSkips(label string, console []byte) {
	lines := strings.Split(string(console), "\n")
	for i, l := range lines {
		if name, ok := strings.CutPrefix(strings.TrimSpace(l), "--- SKIP: "); ok {
			reason := ""
			if i > 0 {
				reason = strings.TrimSpace(lines[i-1])
			}
			fmt.Printf("%s: skipped %s: %s\n", label, name, reason)
		}
	}
}

// The support table lives between these lines of the Markdown file.
const (
	tableBegin = "<!-- support table: generated by `make support-table` from the kernel lab's results; do not edit -->"
	tableEnd   = "<!-- end of support table -->"
)

// writeSupportTable replaces the support table in the Markdown file md with
// one made from the results at path.
func writeSupportTable(path, md string) error {
	res, err := readResults(path)
	if err != nil {
		return err
	}
	table, err := supportTable(res)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(md)
	if err != nil {
		return err
	}
	out, err := replaceBetween(string(b), tableBegin, tableEnd, table)
	if err != nil {
		return fmt.Errorf("%s: %w", md, err)
	}
	return os.WriteFile(md, []byte(out), 0o644)
}

func replaceBetween(s, begin, end, body string) (string, error) {
	i := strings.Index(s, begin)
	j := strings.Index(s, end)
	if i < 0 || j < i {
		return "", errors.New("no support table markers (" + begin + " ... " + end + ")")
	}
	return s[:i+len(begin)] + "\n" + body + s[j:], nil
}

// supportTable is one row per kernel and architecture: whether each cgroup
// version passed every test, and the flush modes that passed.
func supportTable(res results) (string, error) {
	if res.Partial != "" {
		return "", fmt.Errorf("the last lab run was partial (%s): run the whole matrix (make vmtest) first", res.Partial)
	}
	type row struct {
		suite, arch, release string
		cg                   map[int]guestResult
	}
	var rows []*row
	index := map[string]*row{}
	for _, g := range res.Guests {
		key := g.Suite + "/" + g.Arch + "/" + g.Release
		r, ok := index[key]
		if !ok {
			r = &row{suite: g.Suite, arch: g.Arch, release: g.Release, cg: map[int]guestResult{}}
			index[key] = r
			rows = append(rows, r)
		}
		r.cg[g.Cgroup] = g
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nWhat `make vmtest` proved on %s (commit %s): the `TestKernel*` tests in Debian's cloud kernels under QEMU, with reclaim of page cache on an ext4 disk.\n\n",
		res.Date.Format("2006-01-02"), res.Commit)
	b.WriteString("| Kernel | Debian suite | Arch | Tests | cgroup v2 | cgroup v1 | Flush modes |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.release, r.suite, r.arch,
			testsCell(r.cg), cell(r.cg[2]), cell(r.cg[1]), modesCell(r.cg))
	}
	if len(res.KernelSubsetSkips) > 0 {
		where := "the guests marked *all* run"
		if res.HostCgroup != 0 {
			where = fmt.Sprintf("the guests marked *all* or *all but host-only* run and, on cgroup v%d, `make hosttest` on the machine that ran the lab", res.HostCgroup)
		}
		fmt.Fprintf(&b, "\nTests: *all* is every `TestKernel*` test; *kernel subset* is every test but these %d of Go-side logic, which %s: %s.\n",
			len(res.KernelSubsetSkips), where, "`"+strings.Join(res.KernelSubsetSkips, "`, `")+"`")
	}
	if len(res.HostOnlySkips) > 0 {
		fmt.Fprintf(&b, "\n*All but host-only* is every test but these %d, which depend neither on the kernel nor on the cgroup version and which `make hosttest` ran on the machine that ran the lab: %s.\n",
			len(res.HostOnlySkips), "`"+strings.Join(res.HostOnlySkips, "`, `")+"`")
	}
	b.WriteString("\n")
	return b.String(), nil
}

// testsCell names the subset a kernel's guests ran, per cgroup version
// where they differ. A configuration that did not run (a kernel without
// the v1 memory controller) ran nothing, whatever it was scheduled for.
func testsCell(cg map[int]guestResult) string {
	name := map[string]string{subsetKernel: "kernel subset", subsetAll: "all", subsetAllButHost: "all but host-only"}
	ran := func(g guestResult) string {
		if g.Status != "pass" && g.Status != "fail" {
			return ""
		}
		return name[g.Tests]
	}
	v2, v1 := ran(cg[2]), ran(cg[1])
	switch {
	case v2 != "" && v1 != "" && v2 != v1:
		return "v2: " + v2 + ", v1: " + v1
	case v2 != "":
		return v2
	case v1 != "":
		return v1
	}
	return "-"
}

func cell(g guestResult) string {
	switch g.Status {
	case "pass":
		return fmt.Sprintf("yes (%d tests)", g.Pass)
	case "skip":
		return "no: " + strings.TrimSuffix(g.Reason, ": no cgroup v1 memory controller")
	case "fail":
		return fmt.Sprintf("**FAILS** (%d of %d tests)", g.Fail, g.Pass+g.Fail)
	}
	return "not tested"
}

// modesCell lists the flush modes that passed, per cgroup version where the
// versions differ.
func modesCell(cg map[int]guestResult) string {
	v2, v1 := strings.Join(cg[2].FlushModes, ", "), strings.Join(cg[1].FlushModes, ", ")
	switch {
	case v1 == "" || v1 == v2:
		return orDash(v2)
	case v2 == "":
		return "v1: " + v1
	}
	return "v2: " + v2 + "; v1: " + v1
}
