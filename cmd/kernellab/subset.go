package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cgrstat/cgrstat/internal/kernellab"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// The tests a guest runs: every TestKernel* test, or a subset.
const (
	subsetAll    = "all"
	subsetKernel = "kernel"
	// subsetAllButHost is every test but hostOnlyTests: what the guests
	// that would run every test run when this machine's make hosttest
	// proves those (-hosttest).
	subsetAllButHost = "all-but-host"
)

// goSideTests are the TestKernel* tests of cgrstat's Go-side logic: what
// commands do when killed or interrupted (the fault-injection rounds),
// serve's series over 2,000 cgroups (cardinality), watch in tmux, and the
// command line's answers to bad input and to races between its own
// commands. They need root and a kernel to run, but what they prove does
// not depend on which kernel: the host and the guests that run every test
// prove it (see assignSubsets). Guests of an emulated architecture (arm64
// under TCG) and the other native guests run the kernel
// subset, every TestKernel* test but these, so that every test of BPF and
// kernel behaviour (load, flush modes, churn, distributions, causes,
// memory.stat agreement) runs on every kernel. A new test runs everywhere
// unless it is named here. Names match in every package (go test -skip):
// a test named here must have a name of its own.
var goSideTests = []string{
	// fault injection
	"TestKernelKillLoadUnload", "TestKernelKillPin", "TestKernelKillHierarchyCreate",
	"TestKernelKillStress", "TestKernelKillCheck", "TestKernelInterrupt",
	// cardinality, tmux
	"TestKernelServeCardinality", "TestKernelWatchTmux", "TestKernelWatchSlowReclaims",
	// the command line's checks and its own commands' races
	"TestKernelBadInput", "TestKernelBadPinPaths", "TestKernelMaxCgroupsBounds",
	"TestKernelNamesInErrors", "TestKernelNotALoadIsLeftAlone", "TestKernelUnpinAllOrNothing",
	"TestKernelDestroyPartialTree", "TestKernelCreateIsAllOrNothing",
	"TestKernelStressNeverChangesTarget", "TestKernelStressChildDeath", "TestKernelConcurrentPinUnload",
	// the commands' own logic over a load: watch's frames, status's
	// report, a relative CGROUP's lookup, load's "loaded already"; about 80 s
	// of the 7.3 arm64 guest's 938 s (2026-12-03), nearly all of it loading
	"TestKernelWatchBatch", "TestKernelStatusUsage", "TestKernelReadByTopName", "TestKernelLoadTwice",
	// issue 17's and 19's command-line logic: unload under serve and watch,
	// the pin path's directories and lock files, serve's HTTP methods,
	// escaped names, exit statuses on signals, a cgroup's identity from its
	// path; about 250 s of the 6.12 arm64 guest's 918 s (2026-12-03)
	"TestKernelUnloadUnderReaders", "TestKernelUnloadRemovesOnlyDirsLoadMade", "TestKernelLockFilesOnlyForLoads",
	"TestKernelServeMethods", "TestKernelHostileCgroupName", "TestKernelMessagesNameWhatTheyMean",
	"TestKernelWatchSignals", "TestKernelOpenPrintsTheCgroup", "TestKernelIdentity",
	// check's JSON report and its embedded default spec, and read's and
	// status's notes on a removed cgroup's stat file: the same check of
	// the same BPF, in every flush mode, runs in TestKernelFlushModes, and
	// a stale stat file's own line (print_stale) in pkg/pin's
	// TestKernelStaleStatFile; 13-22 s each in the arm64 guests
	// (2026-12-03), nearly all of it one load
	"TestKernelCheckDefaultSpec", "TestKernelCheckDeepSpecJSON", "TestKernelStaleStatFileNotes",
	// the bench's unload under the pin path's lock (bench/)
	"TestKernelBenchUnloadRemovesLockFile",
	// issue 21: serve's exemplars with every event slot taken and across a
	// reload (the event stream itself is pkg/events' kernel tests)
	"TestKernelServeExemplarStream",
	// the README's workflow, command by command: load twice, hierarchy
	// create --pin, stress, cat, read's views, status, destroy, unload.
	// What it proves of the BPF runs in the kernel subset: the load, tree,
	// stress and invariants in every flush mode (TestKernelFlushModes), the
	// stat file's first line (pkg/pin), programs gone after unload
	// (pkg/loader's TestKernelUnload); 22-37 s of each arm64 guest
	// (2026-12-03), most of it one load
	"TestKernelManualWorkflow",
}

// hostOnlyTests are the Go-side tests whose claims depend neither on the
// kernel nor on the cgroup version: what they prove is cgrstat's handling
// of bpffs pin paths and their lock files, of HTTP methods and of signals,
// and its recovery when killed while it loads or unloads; no cgroup
// hierarchy they build or change is part of it. With
// -hosttest, make hosttest proves them on this machine and no guest runs
// them: about 105 s of the 7.2 v2 guest's 560 s (2026-12-03), the native
// guest that ran every test. Each is also in goSideTests.
var hostOnlyTests = []string{
	"TestKernelKillLoadUnload", "TestKernelBadPinPaths", "TestKernelMaxCgroupsBounds",
	"TestKernelUnloadUnderReaders", "TestKernelUnloadRemovesOnlyDirsLoadMade", "TestKernelLockFilesOnlyForLoads",
	"TestKernelServeMethods", "TestKernelWatchSignals", "TestKernelBenchUnloadRemovesLockFile",
	// pin, unpin and read racing unload and load: the pin path's lock,
	// and a whole load or none after it. Its cgroups only hold stat
	// files, whose iterator links on v2 the kernel subset's pin tests
	// (pkg/pin) prove in every guest; 44 s of the 7.2 v2 guest's 734 s
	// (2026-12-03, CI).
	"TestKernelConcurrentPinUnload",
}

// parseSubset checks -emulated.
func parseSubset(s string) (string, error) {
	if s != subsetAll && s != subsetKernel {
		return "", fmt.Errorf("-emulated: %q is not %s or %s", s, subsetKernel, subsetAll)
	}
	return s, nil
}

// Values of -native: which native guests run the Go-side tests.
const (
	nativeNewest = "newest"
	nativeAll    = "all"
)

func parseNative(s string) (string, error) {
	if s != nativeNewest && s != nativeAll {
		return "", fmt.Errorf("-native: %q is not %s or %s", s, nativeNewest, nativeAll)
	}
	return s, nil
}

// assignSubsets gives each guest to run its tests. Emulated guests run
// -emulated's subset. Native guests (amd64) run every
// test when -native is all; by default, for each cgroup version the native
// guest with the newest kernel runs every test and the others the kernel
// subset. The Go-side tests then run on both cgroup versions, on the
// oldest kernel (6.1, the only one with v1) and the newest (7.x), and on
// the host (make hosttest), and every test of BPF and kernel behaviour
// still runs on every kernel and architecture. The Go-side tests took
// about 170 s of each native guest's 370-390 s (2026-12-03, two guests at
// once on two cores), most of it in loads. With -hosttest (make test) no
// guest of the host's cgroup version (o.hostCgroup) runs them: make
// hosttest, which runs every TestKernel* test on this machine in the same
// make test, proves them on that version.
func assignSubsets(o options, guests []*guest) {
	newest := map[int]*guest{}
	for _, g := range guests {
		g.subset = subsetAll
		if g.arch != kernellab.HostArch() {
			g.subset = o.emulated
			continue
		}
		if g.skip != "" || o.native == nativeAll {
			continue
		}
		if n := newest[g.cgroup]; n == nil || releaseLess(n.kernel.Release, g.kernel.Release) {
			newest[g.cgroup] = g
		}
	}
	for _, g := range guests {
		if g.arch != kernellab.HostArch() || g.skip != "" || o.native == nativeAll {
			continue
		}
		switch {
		case newest[g.cgroup] != g || g.cgroup == o.hostCgroup:
			g.subset = subsetKernel
		case o.hostCgroup != 0:
			g.subset = subsetAllButHost
		}
	}
}

// hostCgroup is the cgroup version whose Go-side tests this machine proves
// when it runs make hosttest beside the lab (-hosttest): the version its
// memory controller is mounted on, if it is root (the TestKernel* tests
// skip otherwise); 0 and why not if it proves none. On the development and
// CI machines that is v1, where the guest of 6.1 v1 spent about 330 s of
// its 560 s (2026-12-03, the longest native guest) on the same Go-side
// tests, which hosttest runs on v1 in the same make test.
func hostCgroup() (int, string) {
	if os.Geteuid() != 0 {
		return 0, "not root: make hosttest skips the kernel tests here, so every cgroup version's newest native guest runs every test"
	}
	h, err := cgroup.Detect("")
	if err != nil {
		return 0, fmt.Sprintf("%v: every cgroup version's newest native guest runs every test", err)
	}
	return h.Version, fmt.Sprintf("this machine's memory controller is on cgroup v%d: make hosttest runs the Go-side tests there, the v%d guests run the kernel subset", h.Version, h.Version)
}

// releaseLess compares kernel releases by their leading numbers
// (6.1.0-50-cloud-amd64 < 6.12.117+deb13-cloud-amd64 < 7.2.13+deb14-...).
func releaseLess(a, b string) bool {
	na, nb := releaseNumbers(a), releaseNumbers(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		if na[i] != nb[i] {
			return na[i] < nb[i]
		}
	}
	return len(na) < len(nb)
}

func releaseNumbers(r string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(r, func(c rune) bool { return c < '0' || c > '9' }) {
		n, err := strconv.Atoi(f)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}

// skipPattern is the go test -skip pattern of a subset, "" for all.
func skipPattern(subset string) string {
	switch subset {
	case subsetKernel:
		return "^(" + strings.Join(goSideTests, "|") + ")$"
	case subsetAllButHost:
		return "^(" + strings.Join(hostOnlyTests, "|") + ")$"
	}
	return ""
}
