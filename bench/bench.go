package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// config is what one machine's run measures.
type config struct {
	Sizes []int `json:"sizes"`
	// Reps is the number of reclaim-then-read rounds per mode and size.
	Reps int `json:"reps"`
	// Events is the least number of reclaim events the collector
	// comparison waits for.
	Events int `json:"events"`
	// CLI is the cgrstat binary: stress children and read --all run it.
	CLI     string `json:"cli"`
	Verbose bool   `json:"verbose"`
	// WalkScale, when set, measures only the walk-mode read of a tree of
	// that many cgroups (issue 10's CPU scaling), nothing else.
	WalkScale int `json:"walk_scale,omitempty"`
	// CollectorsOnly measures the collectors and nothing else.
	CollectorsOnly bool `json:"collectors_only,omitempty"`
	// Scrapes is how many times serve is scraped before its memory is read.
	Scrapes int `json:"scrapes"`
	// Big, when set, is a tree of that many cgroups whose whole-tree read
	// alone is measured, loaded with default flags (the issue 18 case:
	// more cgroups than --max-cgroups tracks).
	Big int `json:"big,omitempty"`
	// ReadsOnly leaves out the collectors, the stat-file reads and the
	// map sizes.
	ReadsOnly bool `json:"reads_only,omitempty"`
	// ScrapeOnly measures serve's scrape (against the in-process read) and
	// nothing else: with ReadsOnly, no whole-tree reads.
	ScrapeOnly bool `json:"scrape_only,omitempty"`
	// Compare is another cgrstat binary whose serve is scraped in the
	// same turns as this one's (a baseline under the same load); Turns,
	// when set, is how many turns (see bench.turns).
	Compare string `json:"compare,omitempty"`
	Turns   int    `json:"turns,omitempty"`
	// Emulated is set for the kernel lab's guests (TCG): fewer turns.
	Emulated bool `json:"emulated,omitempty"`
}

// bench is one machine's run: where it may create cgroups and pins.
type bench struct {
	cfg     config
	h       *cgroup.Hierarchy
	root    cgroup.Cgroup // the bench's own cgroup, below h.DefaultParent()
	pinPath string
	scratch string
	start   time.Time
}

func newBench(cfg config) (*bench, error) {
	h, err := cgroup.Detect("")
	if err != nil {
		return nil, fmt.Errorf("finding the memory cgroup hierarchy: %w", err)
	}
	name := fmt.Sprintf("cgrstat-bench-%d", os.Getpid())
	return &bench{
		cfg: cfg, h: h,
		root:    h.DefaultParent().Child(name),
		pinPath: filepath.Join("/sys/fs/bpf", name),
		scratch: os.TempDir(),
		start:   time.Now(),
	}, nil
}

// logf reports progress on stderr, which the lab streams with -v.
func (b *bench) logf(format string, args ...any) {
	if b.cfg.Verbose {
		fmt.Fprintf(os.Stderr, "bench %6.1fs: %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
	}
}

// run measures everything on this kernel. Whatever it created is removed
// before it returns, also when ctx is cancelled; r holds what was measured
// before an error.
func (b *bench) run(ctx context.Context, r *Result) (err error) {
	if b.cfg.WalkScale > 0 {
		return b.walkScale(ctx, r, b.cfg.WalkScale)
	}
	undo, err := b.setUp(r)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, undo()) }()
	if err := b.probeModes(r); err != nil {
		return err
	}
	for _, m := range r.Modes {
		if b.cfg.ReadsOnly {
			break
		}
		b.logf("%s: collectors", m)
		c, err := b.collectors(ctx, m)
		if err != nil {
			return fmt.Errorf("%s mode, collectors: %w", m, err)
		}
		r.Collectors = append(r.Collectors, c)
	}
	if b.cfg.CollectorsOnly {
		return nil
	}
	for _, n := range b.cfg.Sizes {
		if err := b.size(ctx, r, n); err != nil {
			return err
		}
	}
	if b.cfg.Big > 0 {
		if err := b.big(ctx, r, b.cfg.Big); err != nil {
			return err
		}
	}
	if b.cfg.ReadsOnly {
		return nil
	}
	return b.footprint(r)
}

// big times the whole-tree read alone on a tree of n cgroups, in the best
// mode, loaded with default flags.
func (b *bench) big(ctx context.Context, r *Result, n int) (err error) {
	b.logf("building a tree of %d cgroups", n)
	t, err := buildTree(ctx, b.h, b.root.Child(fmt.Sprintf("big%d", n)), n)
	defer func() { err = errors.Join(err, t.destroy()) }()
	if err != nil {
		return err
	}
	r.Trees = append(r.Trees, TreeInfo{N: n, BuildSeconds: t.built.Seconds()})
	s, err := b.open(r.Modes[0], t.top)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	if err := b.stress(ctx, t, 4<<20, 1); err != nil {
		return err
	}
	b.logf("%s: whole-tree read of %d cgroups", r.Modes[0], n)
	w, err := b.whole(s, t)
	if err != nil {
		return fmt.Errorf("%s mode, %d cgroups: %w", r.Modes[0], n, err)
	}
	r.Whole = append(r.Whole, w)
	return nil
}

// size builds a tree of n cgroups and measures every mode on it.
func (b *bench) size(ctx context.Context, r *Result, n int) (err error) {
	b.logf("building a tree of %d cgroups", n)
	avail := memAvailableMiB()
	t, err := buildTree(ctx, b.h, b.root.Child(fmt.Sprintf("n%d", n)), n)
	defer func() { err = errors.Join(err, t.destroy()) }()
	if err != nil {
		return err
	}
	info := TreeInfo{N: n, BuildSeconds: t.built.Seconds(), MemMiB: avail - memAvailableMiB()}
	r.Trees = append(r.Trees, info)
	b.logf("tree of %d built in %.1fs, %d MiB", n, info.BuildSeconds, info.MemMiB)
	for j, m := range r.Modes {
		if b.cfg.ReadsOnly && j > 0 {
			break
		}
		if err := b.mode(ctx, r, t, m, j == 0); err != nil {
			return fmt.Errorf("%s mode, %d cgroups: %w", m, n, err)
		}
	}
	return nil
}

// mode loads cgrstat in mode m and measures reads on tree t, and the
// whole-tree read in the best mode.
func (b *bench) mode(ctx context.Context, r *Result, t *tree, m loader.Mode, best bool) (err error) {
	s, err := b.open(m, t.top)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	if !b.cfg.ReadsOnly {
		b.logf("%s: reads at the top of %d cgroups", m, t.n)
		rd, err := b.reads(ctx, s, t)
		if err != nil {
			return err
		}
		r.Reads = append(r.Reads, rd)
	} else if err := b.stress(ctx, t, 4<<20, 1); err != nil {
		return err // the top must show reclaim (checkAll)
	}
	if !best {
		return nil
	}
	if !b.cfg.ScrapeOnly {
		b.logf("%s: whole-tree read of %d cgroups", m, t.n)
		w, err := b.whole(s, t)
		if err != nil {
			return err
		}
		r.Whole = append(r.Whole, w)
	}
	b.logf("%s: serve, %d scrapes of %d cgroups", m, b.cfg.Scrapes, t.n)
	sc, err := b.scrape(s, t)
	if err != nil {
		return err
	}
	r.Scrapes = append(r.Scrapes, sc)
	return nil
}

func describe(r *Result, h *cgroup.Hierarchy) error {
	r.Kernel = loader.KernelRelease()
	r.CgroupVersion = h.Version
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("counting CPUs: %w", err)
	}
	r.CPUs = cpus
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		r.MemTotalMiB = int64(si.Totalram) * int64(si.Unit) >> 20
	}
	return nil
}

// memAvailableMiB reads MemAvailable from /proc/meminfo; 0 if it cannot.
func memAvailableMiB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb >> 10
		}
	}
	return 0
}

// removeQuiet removes an empty cgroup that may already be gone.
func removeQuiet(c cgroup.Cgroup) error {
	if !c.Exists() {
		return nil
	}
	return c.Remove()
}

// setUp describes the machine into r, turns on BPF run-time statistics
// and makes the bench's root cgroup with the memory controller enabled for
// the trees below it (v2; v1 has it everywhere). undo reverses all of it.
func (b *bench) setUp(r *Result) (undo func() error, err error) {
	if err := describe(r, b.h); err != nil {
		return nil, err
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enabling BPF run-time statistics: %w", err)
	}
	if err := b.root.Mkdir(); err != nil {
		stats.Close()
		return nil, err
	}
	undo = func() error {
		defer stats.Close()
		return removeQuiet(b.root)
	}
	if _, err := b.h.EnableMemory(b.root); err != nil {
		return nil, errors.Join(err, undo())
	}
	return undo, nil
}
