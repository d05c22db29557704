package main

import (
	"fmt"
	"strings"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

// The tests a guest runs: every TestKernel* test, or the kernel subset.
const (
	subsetAll    = "all"
	subsetKernel = "kernel"
)

// goSideTests are the TestKernel* tests of cgrstat's Go-side logic: what
// commands do when killed or interrupted (the fault-injection rounds),
// serve's series over 2,000 cgroups (cardinality), watch in tmux, and the
// command line's answers to bad input and to races between its own
// commands. They need root and a kernel to run, but what they prove does
// not depend on which kernel: the native guests (and the host) prove it.
// Guests of an emulated architecture (arm64 under TCG, 4-8 times slower)
// run the kernel subset, every TestKernel* test but these, so that every
// test of BPF and kernel behaviour (load, flush modes, churn,
// distributions, causes, memory.stat agreement) runs on every kernel. A
// new test runs everywhere unless it is named here.
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
	// issue 21: serve's exemplars with every event slot taken and across a
	// reload (the event stream itself is pkg/events' kernel tests)
	"TestKernelServeExemplarStream",
}

// parseSubset checks -emulated.
func parseSubset(s string) (string, error) {
	if s != subsetAll && s != subsetKernel {
		return "", fmt.Errorf("-emulated: %q is not %s or %s", s, subsetKernel, subsetAll)
	}
	return s, nil
}

// subsetFor is what guests of arch run: all on this machine's architecture,
// -emulated's subset on one QEMU emulates.
func subsetFor(o options, arch string) string {
	if arch == kernellab.HostArch() {
		return subsetAll
	}
	return o.emulated
}

// skipPattern is the go test -skip pattern of a subset, "" for all.
func skipPattern(subset string) string {
	if subset != subsetKernel {
		return ""
	}
	return "^(" + strings.Join(goSideTests, "|") + ")$"
}
