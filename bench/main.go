// Command bench measures what cgrstat costs: its collectors per reclaim
// event against a seed-style baseline and empty programs, its flush, the
// read of a stat file as the hierarchy grows, a whole-tree read against a
// cgroupfs walk, and its map memory. It runs on this host, then in QEMU
// guests on Debian's kernels (internal/kernellab), and prints a table per
// kernel and writes the results as JSON.
//
//	make bench                                  # host, then bookworm, trixie, sid
//	make bench BENCH_FLAGS='-host-only -sizes 100,1000 -v'
//	go run ./bench -host-only -reads -sizes 100,10000   # the reads alone (issue 18)
//	go run ./bench -host-only -scrape-only -sizes 10000  # serve's scrape alone
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

type options struct {
	hostOnly, labOnly bool
	suites            string
	sizes             []int
	jsonFile          string
	verbose           bool
	reps, events      int
	scrapes           int
	labScrapes        int
	memMiB            int
	guestTimeout      time.Duration
	// walkScale and walkCPUs select the walk-scaling run: a tree of
	// walkScale cgroups, each guest booted once per vCPU count.
	walkScale int
	walkCPUs  []int
	// collectorsOnly: the collector comparison alone (host or guests).
	collectorsOnly bool
	// big is the tree that only the whole-tree read measures, on the host;
	// readsOnly leaves out the collectors, the stat-file reads and the maps.
	big        int
	readsOnly  bool
	scrapeOnly bool
	compare    string
	turns      int
	cpus       int // of the guest being booted; 0 for the lab's default
}

func parseFlags() (options, error) {
	var o options
	var sizes string
	flag.BoolVar(&o.hostOnly, "host-only", false, "measure this host only")
	flag.BoolVar(&o.labOnly, "lab-only", false, "measure the kernel-lab guests only")
	flag.StringVar(&o.suites, "suites", kernellab.DefaultSuites, "Debian suites whose kernels the lab boots")
	flag.StringVar(&sizes, "sizes", "100,1000,10000", "hierarchy sizes (cgroups per tree)")
	flag.StringVar(&o.jsonFile, "json", "bench/results.json", "where to write the results")
	flag.BoolVar(&o.verbose, "v", false, "report progress, and stream the guests' consoles")
	flag.IntVar(&o.reps, "reps", 5, "reclaim-then-read rounds per flush mode and size")
	flag.IntVar(&o.events, "events", 2400, "reclaim events the collector comparison waits for, at least")
	flag.IntVar(&o.scrapes, "scrapes", 1000, "scrapes of serve before its RSS is read, on the host")
	flag.IntVar(&o.labScrapes, "lab-scrapes", 20, "the same in the lab's guests (emulated, slow)")
	flag.IntVar(&o.memMiB, "mem", 2048, "guest memory in MiB")
	flag.DurationVar(&o.guestTimeout, "guest-timeout", 6*time.Minute, "time limit for each guest, boot included")
	var walkCPUs string
	flag.IntVar(&o.walkScale, "walk-scale", 0, "measure only the walk-mode read of a tree of this many cgroups (every cgroup with history, 1% new), per vCPU count")
	flag.StringVar(&walkCPUs, "walk-cpus", "2,8", "guest vCPU counts for -walk-scale")
	flag.BoolVar(&o.collectorsOnly, "collectors-only", false, "measure only the collectors' cost per reclaim event")
	flag.IntVar(&o.big, "big", 30000, "on the host, also time read --all of a tree of this many cgroups, loaded with default flags (0: not)")
	flag.BoolVar(&o.readsOnly, "reads", false, "measure the reads only: whole-tree reads, read of one cgroup, serve (no collectors, stat-file reads or map sizes)")
	flag.BoolVar(&o.scrapeOnly, "scrape-only", false, "measure only serve's scrape against an in-process read --all, on the host (implies -reads and -big 0)")
	flag.StringVar(&o.compare, "compare", "", "another cgrstat binary (a baseline) whose serve is scraped in the same turns, on the host")
	flag.IntVar(&o.turns, "turns", 0, "turns of each whole-tree read and of scrape and in-process read (0: 11 on the host; in the lab 3 at 10,000 cgroups, 5 below)")
	flag.Parse()
	if o.scrapeOnly {
		o.readsOnly, o.big = true, 0
	}
	if flag.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if o.hostOnly && o.labOnly {
		return o, errors.New("-host-only and -lab-only exclude each other")
	}
	if o.reps < 1 || o.events < 1 {
		return o, errors.New("-reps and -events must be at least 1")
	}
	var err error
	if o.sizes, err = parseSizes(sizes); err != nil {
		return o, err
	}
	for _, f := range strings.Split(walkCPUs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-walk-cpus: %q is not a CPU count", f)
		}
		o.walkCPUs = append(o.walkCPUs, n)
	}
	return o, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < stressedLeaves+1 {
			return nil, fmt.Errorf("-sizes: %q is not a size of at least %d cgroups", f, stressedLeaves+1)
		}
		out = append(out, n)
	}
	return out, nil
}

func (o options) config(cli string) config {
	return config{Sizes: o.sizes, Reps: o.reps, Events: o.events, CLI: cli, Verbose: o.verbose, Scrapes: o.scrapes, WalkScale: o.walkScale,
		ReadsOnly: o.readsOnly, ScrapeOnly: o.scrapeOnly, Compare: o.compare, Turns: o.turns, CollectorsOnly: o.collectorsOnly}
}

func main() {
	if os.Getenv(launchEnv) != "" {
		os.Exit(launchMain())
	}
	if os.Getenv(readEnv) != "" {
		os.Exit(readMain())
	}
	if os.Getenv(guestEnv) != "" {
		os.Exit(guestMain())
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "cgrstat-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cli, err := goBuild(ctx, tmp, "cmd/cgrstat", "cgrstat")
	if err != nil {
		return err
	}
	var results []*Result
	var errs []error
	if !o.labOnly {
		cfg := o.config(cli)
		cfg.Big = o.big
		r := runHost(ctx, cfg)
		results = append(results, r)
		printResult(os.Stdout, r)
	}
	if !o.hostOnly && ctx.Err() == nil {
		rs, err := runLab(ctx, o, tmp, cli)
		results, errs = append(results, rs...), append(errs, err)
	}
	for _, r := range results {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("%s (%s): %s", r.Machine, r.Kernel, r.Error))
		}
	}
	errs = append(errs, writeJSON(o.jsonFile, results))
	return errors.Join(errs...)
}

// runHost measures this machine. Errors are recorded in the result, next
// to whatever was measured before them.
func runHost(ctx context.Context, cfg config) *Result {
	r := &Result{Machine: "host"}
	start := time.Now()
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	b, err := newBench(cfg)
	if err == nil {
		err = b.run(ctx, r)
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}
