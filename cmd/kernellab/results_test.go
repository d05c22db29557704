package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

func TestSupportTable(t *testing.T) {
	res := results{
		Date:   time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		Commit: "abc123",
		Guests: []guestResult{
			{Suite: "bookworm", Arch: "amd64", Release: "6.1.0-50-cloud-amd64", Cgroup: 2, Tests: "all", Status: "pass", Pass: 60, FlushModes: []string{"fentry", "kprobe", "walk"}},
			{Suite: "bookworm", Arch: "amd64", Release: "6.1.0-50-cloud-amd64", Cgroup: 1, Tests: "all", Status: "pass", Pass: 60, FlushModes: []string{"fentry", "walk"}},
			{Suite: "trixie", Arch: "arm64", Release: "6.12.117+deb13-cloud-arm64", Cgroup: 2, Tests: "kernel", Status: "fail", Pass: 58, Fail: 2, FlushModes: []string{"walk"}},
			{Suite: "trixie", Arch: "arm64", Release: "6.12.117+deb13-cloud-arm64", Cgroup: 1, Tests: "all", Status: "skip", Reason: "CONFIG_MEMCG_V1 is not set: no cgroup v1 memory controller"},
		},
		KernelSubsetSkips: []string{"TestKernelKillPin", "TestKernelWatchTmux"},
	}
	got, err := supportTable(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 6.1.0-50-cloud-amd64 | bookworm | amd64 | all | yes (60 tests) | yes (60 tests) | v2: fentry, kprobe, walk; v1: fentry, walk |",
		"| 6.12.117+deb13-cloud-arm64 | trixie | arm64 | kernel subset | **FAILS** (2 of 60 tests) | no: CONFIG_MEMCG_V1 is not set | walk |",
		"*kernel subset* is every test but these 2 of Go-side logic, which the guests marked *all* run: `TestKernelKillPin`, `TestKernelWatchTmux`.",
		"2026-11-25 (commit abc123)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	// With -hosttest (make test) on a v1 machine.
	res.Guests[0].Tests, res.Guests[1].Tests = subsetAllButHost, subsetKernel
	res.HostCgroup, res.HostOnlySkips = 1, []string{"TestKernelServeMethods"}
	if got, err = supportTable(res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 6.1.0-50-cloud-amd64 | bookworm | amd64 | v2: all but host-only, v1: kernel subset |",
		"which the guests marked *all* or *all but host-only* run and, on cgroup v1, `make hosttest` on the machine that ran the lab: `TestKernelKillPin`",
		"*All but host-only* is every test but these 1, which depend neither on the kernel nor on the cgroup version and which `make hosttest` ran on the machine that ran the lab: `TestKernelServeMethods`.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	res.Partial = "-run=Smoke"
	if _, err := supportTable(res); err == nil || !strings.Contains(err.Error(), "-run=Smoke") {
		t.Errorf("a table from a partial run: %v", err)
	}
}

func TestReplaceBetween(t *testing.T) {
	doc := "# x\n" + tableBegin + "\nold\n" + tableEnd + "\nrest\n"
	got, err := replaceBetween(doc, tableBegin, tableEnd, "new\n")
	if err != nil || got != "# x\n"+tableBegin+"\nnew\n"+tableEnd+"\nrest\n" {
		t.Errorf("replaceBetween = %q, %v", got, err)
	}
	if _, err := replaceBetween("# no markers\n", tableBegin, tableEnd, "x"); err == nil {
		t.Error("a document without markers was accepted")
	}
}

func TestWriteSupportTableNeedsResults(t *testing.T) {
	md := filepath.Join(t.TempDir(), "README.md")
	os.WriteFile(md, []byte(tableBegin+"\n"+tableEnd+"\n"), 0o644)
	if err := writeSupportTable(filepath.Join(t.TempDir(), "none.json"), md); err == nil || !strings.Contains(err.Error(), "make vmtest") {
		t.Errorf("without results: %v", err)
	}
}

func TestPartial(t *testing.T) {
	o := options{suites: kernellab.DefaultSuites, cgroups: "2,1"}
	if p := partial(o); p != "" {
		t.Errorf("the default matrix is partial: %q", p)
	}
	o.run, o.cgroups = "Smoke", "2"
	if p := partial(o); p != "-run=Smoke -cgroup=2" {
		t.Errorf("partial = %q", p)
	}
}

func TestFlushModes(t *testing.T) {
	console := "=== RUN   TestKernelFlushModes\r\n--- PASS: TestKernelFlushModes (4.01s)\r\n    --- PASS: TestKernelFlushModes/walk (1.01s)\r\n    --- SKIP: TestKernelFlushModes/kprobe (0.1s)\r\n    --- PASS: TestKernelFlushModes/fentry (1.58s)\r\n"
	if got := strings.Join(flushModes([]byte(console)), ","); got != "fentry,walk" {
		t.Errorf("flushModes = %q", got)
	}
}

func TestParseCgroups(t *testing.T) {
	if v, err := parseCgroups("2, v1"); err != nil || len(v) != 2 || v[0] != 2 || v[1] != 1 {
		t.Errorf("parseCgroups = %v, %v", v, err)
	}
	for _, bad := range []string{"", "3", "2,x"} {
		if _, err := parseCgroups(bad); err == nil {
			t.Errorf("parseCgroups(%q) accepted", bad)
		}
	}
}

func TestCrashedBeforeInit(t *testing.T) {
	oops := "[    1.205241] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n[    1.206571] Kernel panic - not syncing: Fatal exception in interrupt\n"
	start := "CGRSTAT-LAB-START kernel=6.12.117 arch=x86_64 cgroup=v2 tmpdir=ext4\n"
	for _, tt := range []struct {
		name    string
		console string
		want    bool
	}{
		{"oops before init", oops, true},
		{"oops after init started", start + oops, false},
		{"no crash, no result", start, false},
	} {
		r := kernellab.ParseConsole([]byte(tt.console))
		if got := crashedBeforeInit(context.Background(), r, r.Err()); got != tt.want {
			t.Errorf("%s: crashedBeforeInit = %v, want %v (err %v)", tt.name, got, tt.want, r.Err())
		}
	}
	r := kernellab.ParseConsole([]byte(oops))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if crashedBeforeInit(ctx, r, r.Err()) {
		t.Error("a cancelled run is booted again")
	}
}

// TestSubsets: for each cgroup version the native guest with the newest
// kernel runs every test, the other native guests and the emulated ones
// the kernel subset, which leaves out only the named Go-side tests and
// none of the tests of BPF and kernel behaviour.
func TestSubsets(t *testing.T) {
	other := "arm64"
	if kernellab.HostArch() == "arm64" {
		other = "amd64"
	}
	mk := func(arch string, cg int, release, skip string) *guest {
		return &guest{arch: arch, cgroup: cg, kernel: kernellab.Kernel{Release: release}, skip: skip}
	}
	native := kernellab.HostArch()
	guests := []*guest{
		mk(native, 2, "6.1.0-50-cloud-amd64", ""), mk(native, 1, "6.1.0-50-cloud-amd64", ""),
		mk(native, 2, "6.12.117+deb13-cloud-amd64", ""), mk(native, 1, "6.12.117+deb13-cloud-amd64", "no v1"),
		mk(native, 2, "7.2.13+deb14-cloud-amd64", ""), mk(native, 1, "7.2.13+deb14-cloud-amd64", "no v1"),
		mk(other, 2, "7.3.4+deb13-cloud-arm64", ""),
	}
	assignSubsets(options{emulated: subsetKernel, native: nativeNewest}, guests)
	var got []string
	for _, g := range guests {
		if g.skip == "" {
			got = append(got, g.subset)
		}
	}
	want := []string{subsetKernel, subsetAll, subsetKernel, subsetAll, subsetKernel}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("subsets %v, want %v (6.1 v2, 6.1 v1, 6.12 v2, 7.2 v2, arm64 7.3 v2)", got, want)
	}
	// -hosttest on a v1 machine: make hosttest proves the Go-side tests on
	// v1, so 6.1 v1 runs the kernel subset; 7.2 v2 still runs every test.
	assignSubsets(options{emulated: subsetKernel, native: nativeNewest, hostCgroup: 1}, guests)
	got = nil
	for _, g := range guests {
		if g.skip == "" {
			got = append(got, g.subset)
		}
	}
	want = []string{subsetKernel, subsetKernel, subsetKernel, subsetAllButHost, subsetKernel}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with the host on v1: subsets %v, want %v (6.1 v2, 6.1 v1, 6.12 v2, 7.2 v2, arm64 7.3 v2)", got, want)
	}
	// What only the host proves is Go-side: no guest of the kernel subset
	// runs it either, and it is all that all-but-host leaves out.
	goSide := regexp.MustCompile(skipPattern(subsetKernel))
	hostOnly := regexp.MustCompile(skipPattern(subsetAllButHost))
	for _, name := range hostOnlyTests {
		if !goSide.MatchString(name) {
			t.Errorf("%s is host-only but not among the Go-side tests", name)
		}
	}
	for _, name := range []string{"TestKernelKillCheck", "TestKernelIdentity", "TestKernelFlushModes", "TestKernelKillLoadUnloadAgain"} {
		if hostOnly.MatchString(name) {
			t.Errorf("all-but-host leaves out %s", name)
		}
	}
	assignSubsets(options{emulated: subsetAll, native: nativeAll, hostCgroup: 1}, guests)
	for _, g := range guests {
		if g.skip == "" && g.subset != subsetAll {
			t.Errorf("-native all -emulated all: %s runs %q", g.kernel.Release, g.subset)
		}
	}
	if skipPattern(subsetAll) != "" {
		t.Errorf("all skips %q", skipPattern(subsetAll))
	}
	skip := regexp.MustCompile(skipPattern(subsetKernel))
	for _, name := range []string{"TestKernelKillPin", "TestKernelServeCardinality", "TestKernelWatchTmux"} {
		if !skip.MatchString(name) {
			t.Errorf("the kernel subset runs %s", name)
		}
	}
	for _, name := range []string{"TestKernelFlushModes", "TestKernelChurn", "TestKernelConcurrentStatReads", "TestKernelCausesAndForced",
		"TestKernelReclaimMatchesMemoryStat", "TestKernelLoadWalk", "TestKernelKillPinAgain", "TestKernelStaleStatFile"} {
		if skip.MatchString(name) {
			t.Errorf("the kernel subset leaves out %s", name)
		}
	}
	if !releaseLess("6.12.117+deb13-cloud-amd64", "7.2.13+deb14-cloud-amd64") || releaseLess("6.12.1", "6.1.0-50") {
		t.Error("releaseLess orders releases wrong")
	}
	if _, err := parseNative("some"); err == nil {
		t.Error("-native some was accepted")
	}
	if _, err := parseSubset("some"); err == nil {
		t.Error("-emulated some was accepted")
	}
}

// TestLogDirPerRun: each run gets a directory of its own, and only the
// newest runs' directories stay.
func TestLogDirPerRun(t *testing.T) {
	cache := t.TempDir()
	a, err := logDir(cache, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := logDir(cache, "")
	if err != nil || a == b {
		t.Fatalf("two runs log to %q and %q (%v)", a, b, err)
	}
	mine := filepath.Join(cache, "logs", "notes")
	os.Mkdir(mine, 0o755)
	for i := 0; i < keepRuns+5; i++ {
		os.Mkdir(filepath.Join(cache, "logs", fmt.Sprintf("%s00000000-%03d", runLogPrefix, i)), 0o755)
	}
	c, err := logDir(cache, "")
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "logs"))
	if len(entries) != keepRuns+1 {
		t.Errorf("%d entries in logs/, want the newest %d runs and the directory that is not a run's", len(entries), keepRuns)
	}
	for _, keep := range []string{c, mine} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s is gone: %v", keep, err)
		}
	}
	if d, err := logDir(cache, filepath.Join(cache, "given")); err != nil || d != filepath.Join(cache, "given") {
		t.Errorf("-logs given: %q, %v", d, err)
	}
}

// TestSchedule: the longest guests start first: native ones running every
// test, then emulated, then the native kernel subset, each newest kernel
// first.
func TestSchedule(t *testing.T) {
	other := "arm64"
	if kernellab.HostArch() == "arm64" {
		other = "amd64"
	}
	native := kernellab.HostArch()
	g := func(arch, subset, release string) *guest {
		return &guest{arch: arch, subset: subset, kernel: kernellab.Kernel{Release: release}}
	}
	want := []*guest{
		g(native, subsetAllButHost, "7.2.13"), g(native, subsetAll, "6.1.0-50"),
		g(other, subsetKernel, "7.3.4"), g(other, subsetKernel, "6.12.117"),
		g(native, subsetKernel, "6.12.117"), g(native, subsetKernel, "6.1.0-50"),
	}
	got := []*guest{want[5], want[2], want[1], want[4], want[3], want[0]}
	sort.SliceStable(got, func(i, j int) bool { return slower(got[i], got[j]) })
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("position %d: %s %s %s, want %s %s %s", i, got[i].arch, got[i].subset, got[i].kernel.Release,
				want[i].arch, want[i].subset, want[i].kernel.Release)
		}
	}
}

// TestGoSideTestsExistOnce: go test -skip matches names in every package,
// so each test the kernel subset leaves out must be defined exactly once
// (a same-named BPF test elsewhere would be left out with it), and a name
// that no test has any more skips nothing.
func TestGoSideTestsExistOnce(t *testing.T) {
	defs := map[string]int{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`(?m)^func (TestKernel\w*)\(`).FindAllSubmatch(b, -1) {
			defs[string(m[1])]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range goSideTests {
		if defs[name] != 1 {
			t.Errorf("%s is defined %d times, want once", name, defs[name])
		}
	}
}

func TestRunJobs(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	var jobs []func() error
	for i := 0; i < 6; i++ {
		jobs = append(jobs, func() error {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
			if i == 4 {
				return fmt.Errorf("job %d", i)
			}
			return nil
		})
	}
	if err := runJobs(jobs, 2); err == nil || err.Error() != "job 4" {
		t.Errorf("runJobs = %v, want job 4's error", err)
	}
	if most != 2 {
		t.Errorf("%d jobs ran at once, want 2", most)
	}
}

// TestScheduleLanes: the split of the December 2026 matrix whose longest
// lane is shortest (longest-first alone gave 1,111 s), every guest in one
// lane, each lane longest first; with more guests than splits to try,
// longest-first.
func TestScheduleLanes(t *testing.T) {
	secs := []float64{734, 474, 248, 222, 209, 168}
	var guests []*guest
	est := map[*guest]float64{}
	for i, s := range secs {
		g := &guest{suite: fmt.Sprint("g", i), arch: kernellab.HostArch(), cgroup: 2}
		guests = append(guests, g)
		est[g] = s
	}
	check := func(lanes [][]*guest, n int, wantLongest float64) {
		t.Helper()
		seen := map[*guest]bool{}
		longest := 0.0
		for _, lane := range lanes {
			sum := 0.0
			for i, g := range lane {
				if seen[g] {
					t.Errorf("%s in two lanes", g.label())
				}
				seen[g] = true
				sum += est[g]
				if i > 0 && est[g] > est[lane[i-1]] {
					t.Errorf("lane %v: not longest first", lane)
				}
			}
			longest = max(longest, sum)
		}
		if len(lanes) != n || len(seen) != len(est) {
			t.Errorf("%d lanes holding %d guests, want %d lanes holding %d", len(lanes), len(seen), n, len(est))
		}
		if longest != wantLongest {
			t.Errorf("longest lane %.0f s, want %.0f", longest, wantLongest)
		}
	}
	check(schedule(guests, est, 2), 2, 1073)
	check(schedule(guests, est, 3), 3, 734)
	check(schedule(guests, est, 1), 1, 2055)
	check(schedule(guests, est, 10), 6, 734)
	// 20 guests of 1 to 20 s: 2^20 splits, longest-first: 105 and 105.
	guests, est = nil, map[*guest]float64{}
	for i := 1; i <= 20; i++ {
		g := &guest{suite: fmt.Sprint("g", i)}
		guests = append(guests, g)
		est[g] = float64(i)
	}
	check(schedule(guests, est, 2), 2, 105)
}

// TestTimes: a full run's times are the next run's estimates; a narrowed
// run's are not kept, and a guest no run timed gets the static estimate.
func TestTimes(t *testing.T) {
	o := options{cache: t.TempDir(), suites: kernellab.DefaultSuites, cgroups: "2,1", count: 1}
	a := &guest{suite: "sid", arch: kernellab.HostArch(), cgroup: 2, subset: subsetAllButHost, elapsed: 500 * time.Second}
	b := &guest{suite: "bookworm", arch: kernellab.HostArch(), cgroup: 1, subset: subsetKernel, elapsed: 99 * time.Second, err: fmt.Errorf("failed")}
	if err := saveTimes(o, []*guest{a, b}); err != nil {
		t.Fatal(err)
	}
	narrowed := o
	narrowed.run = "Smoke"
	a2 := *a
	a2.elapsed = time.Second
	if err := saveTimes(narrowed, []*guest{&a2}); err != nil {
		t.Fatal(err)
	}
	est := estimates(o, []*guest{a, b})
	if est[a] != 500 || est[b] != staticEstimate(b) {
		t.Errorf("estimates %v, %v; want 500 and %v", est[a], est[b], staticEstimate(b))
	}
}
