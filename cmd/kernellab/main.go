// Command kernellab runs cgrstat's kernel tests (TestKernel*) on real Debian
// kernels booted in QEMU: one guest per kernel, architecture and cgroup
// version, each with an ext4 scratch disk so that reclaim frees real page
// cache.
//
//	go run ./cmd/kernellab                          # the whole matrix
//	go run ./cmd/kernellab -suites sid -cgroup 2 -v -run Smoke
//	go run ./cmd/kernellab -suites trixie/arm64     # one arm64 kernel
//	KERNEL=/boot/vmlinuz go run ./cmd/kernellab     # only that kernel
//	go run ./cmd/kernellab -support-table README.md # the README's table from the last run
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kernellab:", err)
		os.Exit(1)
	}
}

type options struct {
	suites   string
	cgroups  string
	kernel   string
	arch     string
	cache    string
	verbose  bool
	run      string
	count    int
	emulated string
	native   string
	hosttest bool
	// hostCgroup is the cgroup version whose Go-side tests this machine's
	// make hosttest proves (-hosttest), 0 for none.
	hostCgroup int
	timeout    time.Duration
	mem        int
	pkgs       string
	refresh    bool
	kvm        bool
	cli        bool
	parallel   int
	results    string
	logs       string
	table      string
}

// defaultParallel is how many guests run at once: one per two host cores,
// as each guest has two vCPUs and TCG is CPU-bound, but at least two, since
// a guest also spends time booting, sleeping in tests and waiting on its
// disk, which another guest fills. Measured on a 2-core machine: two at
// once finish the matrix sooner than one; more only slow every guest down.
func defaultParallel() int {
	return max(2, runtime.NumCPU()/2)
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.suites, "suites", kernellab.DefaultSuites, "comma-separated Debian suites whose cloud kernel to boot, each SUITE (this machine's architecture) or SUITE/ARCH (amd64, arm64)")
	flag.StringVar(&o.cgroups, "cgroup", "2,1", "cgroup versions to mount the memory controller on; v1 runs on the kernels whose config has it")
	flag.StringVar(&o.kernel, "kernel", os.Getenv("KERNEL"), "boot only this kernel image instead of the suites' kernels (env KERNEL); it needs virtio-blk, virtio-pci and ext4 built in for the scratch disk, and v1 memory cgroups for -cgroup 1")
	flag.StringVar(&o.arch, "arch", kernellab.HostArch(), "architecture of the -kernel image")
	flag.StringVar(&o.cache, "cache", "", "kernel cache directory (default $XDG_CACHE_HOME/cgrstat/kernellab)")
	flag.BoolVar(&o.verbose, "v", false, "stream each guest's console, each line prefixed with its guest")
	flag.StringVar(&o.run, "run", "", "run only tests matching this regexp (go test -run); default "+kernelTests)
	flag.StringVar(&o.emulated, "emulated", subsetKernel, "tests that guests of an emulated architecture (arm64 under TCG) run: "+subsetKernel+" (every test of BPF and kernel behaviour, leaving out Go-side logic the native guests prove) or "+subsetAll)
	flag.StringVar(&o.native, "native", nativeNewest, "which guests of this machine's architecture run every test: "+nativeNewest+" (per cgroup version the one with the newest kernel; the others run the kernel subset, as -emulated) or "+nativeAll)
	flag.BoolVar(&o.hosttest, "hosttest", false, "this machine runs the TestKernel* tests too (make hosttest, as make test does): the native guests of its memory controller's cgroup version leave the Go-side tests to it and run the kernel subset")
	flag.IntVar(&o.count, "count", 1, "run each test this many times (go test -count), e.g. to hunt a race; raise -timeout with it")
	flag.DurationVar(&o.timeout, "timeout", kernellab.DefaultTimeout, "time limit for each guest, boot included (three times that for an emulated architecture)")
	flag.IntVar(&o.mem, "mem", kernellab.DefaultMemoryMiB, "guest memory in MiB")
	flag.StringVar(&o.pkgs, "pkgs", "", "comma-separated Go packages whose tests run in the guest (default: every package with a TestKernel* test)")
	flag.BoolVar(&o.refresh, "refresh", false, "ask the Debian archive for newer kernels even if the cached ones are fresh")
	flag.BoolVar(&o.cli, "cli", true, "build ./cmd/cgrstat into the guest as /bin/cgrstat ($CGRSTAT_BIN)")
	flag.BoolVar(&o.kvm, "kvm", false, "use KVM instead of TCG for guests of this machine's architecture (only where /dev/kvm can run one)")
	flag.IntVar(&o.parallel, "parallel", defaultParallel(), "guests to run at once")
	flag.StringVar(&o.logs, "logs", "", "directory for the guests' consoles (default: a new directory for this run below the cache's logs/)")
	flag.StringVar(&o.results, "results", "kernellab-results.json", "write the results here (JSON); -support-table reads them")
	flag.StringVar(&o.table, "support-table", "", "boot nothing: rewrite the support table in this Markdown file (README.md) from -results")
	flag.Parse()
	return o
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := parseFlags()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if o.table != "" {
		return writeSupportTable(o.results, o.table)
	}
	var err error
	if o.emulated, err = parseSubset(o.emulated); err != nil {
		return err
	}
	if o.native, err = parseNative(o.native); err != nil {
		return err
	}
	if o.count < 1 {
		return errors.New("-count must be at least 1")
	}
	if o.parallel < 1 {
		return errors.New("-parallel must be at least 1")
	}
	versions, err := parseCgroups(o.cgroups)
	if err != nil {
		return err
	}
	if o.hosttest {
		var why string
		o.hostCgroup, why = hostCgroup()
		fmt.Printf("kernellab: -hosttest: %s\n", why)
	}
	if o.cache == "" {
		if o.cache, err = kernellab.DefaultCacheDir(); err != nil {
			return err
		}
	}
	if o.logs, err = logDir(o.cache, o.logs); err != nil {
		return err
	}
	fmt.Printf("kernellab: consoles in %s\n", o.logs)
	tmp, err := os.MkdirTemp("", "kernellab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	commit := gitCommit()
	guests, err := plan(ctx, o, versions)
	if err != nil {
		return err
	}
	lanes, est := planLanes(o, guests)
	builds, err := prepare(ctx, o, tmp, guests, lanes)
	if err != nil {
		return err
	}
	fmt.Printf("kernellab: %d guests, %d at a time, each once its architecture is built\n", countRunnable(guests), o.parallel)
	runAll(ctx, o, lanes, est, builds)
	wall := time.Since(start)
	summarize(guests, wall)
	if err := writeResults(o, commit, guests, wall); err != nil {
		return err
	}
	if err := saveTimes(o, guests); err != nil {
		return err
	}
	var buildErr error
	for _, b := range builds {
		<-b.done // none is still writing to tmp
		if buildErr == nil {
			buildErr = b.err
		}
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if buildErr != nil {
		return buildErr
	}
	if n := countFailed(guests); n > 0 {
		return fmt.Errorf("%d of %d guests failed", n, countRunnable(guests))
	}
	return nil
}

// kernelTests are what a guest runs unless -run says otherwise: the tests
// that need a kernel. The packages' other tests are make unit's, and may
// need files (the README, the source tree) that a guest does not have.
const kernelTests = "^TestKernel"

// parseCgroups parses "2,1".
func parseCgroups(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(f), "v"))
		if err != nil || v < 1 || v > 2 {
			return nil, fmt.Errorf("-cgroup: %q is not 1 or 2", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// runLogPrefix starts the name of every run's log directory below the
// cache: the date and time, so that ls lists runs in order.
const runLogPrefix = "run-"

// keepRuns is how many runs' log directories the cache keeps.
const keepRuns = 20

// logDir is where this run's consoles go: dir if given, else a directory
// of its own below the cache's logs/, so that runs from other checkouts
// (or at the same time) never overwrite each other's consoles. Of the
// cache's run directories only the newest keepRuns stay.
func logDir(cache, dir string) (string, error) {
	if dir != "" {
		return dir, os.MkdirAll(dir, 0o755)
	}
	parent := filepath.Join(cache, "logs")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(parent, runLogPrefix+time.Now().UTC().Format("20060102-150405-"))
	if err != nil {
		return "", err
	}
	pruneRuns(parent, keepRuns)
	return dir, nil
}

// pruneRuns removes all but the newest keep run directories in parent
// (their names sort by time); nothing else there is touched.
func pruneRuns(parent string, keep int) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	var runs []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), runLogPrefix) {
			runs = append(runs, e.Name())
		}
	}
	sort.Strings(runs)
	for _, r := range runs[:max(len(runs)-keep, 0)] {
		os.RemoveAll(filepath.Join(parent, r))
	}
}
