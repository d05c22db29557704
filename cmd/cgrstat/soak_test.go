package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// The soak's size. make soak asks for a month of a batch node's cgroups
// (100,000); make test runs the default, about a minute here.
const (
	soakLifecyclesEnv = "CGRSTAT_SOAK_LIFECYCLES"
	soakWorkersEnv    = "CGRSTAT_SOAK_WORKERS"
	soakLifecycles    = 20000
)

// soakWorkers is how many lifecycles run at once by default: one per CPU.
// Measured here (2 CPUs, 20,000 lifecycles): 1 worker 276 lifecycles/s, 2
// workers 450/s, 4 the same 450/s (then one scrape per ten lifecycles sets
// the pace), 8 workers 333/s: mkdir, rmdir and the walk-mode readers all
// wait for cgroup_mutex, and more workers only queue there.
var soakWorkers = runtime.NumCPU()

func soakEnv(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

// TestSoak is a batch node's churn of cgroups in minutes: cgroups are
// created, one in ten runs a job that reclaims, and each is removed, by
// several workers at once, while serve (which loads the collectors itself)
// is scraped back to back, read --all runs every second and watch runs in
// batch. A second load at another pin path, independent of serve's, reads
// each cgroup just before its removal. It checks, and prints as a table:
//   - serve's RSS: the median of the last tenth of the scrapes at most 10%
//     above the first tenth's (a leak per cgroup or per scrape shows);
//   - both loads' map entries at most the live plus dying memory cgroups of
//     the machine, and the removed cgroups' at most the dying ones;
//   - every lost counter 0, in every scrape and in both loads;
//   - no scrape that started after a cgroup's removal has its series;
//   - each ancestor (the worker's parent, jobs, the top) equal, in the
//     second load, to the sum of what its removed children recorded, in
//     every field, bucket and cause; and in serve's load, in counts and
//     pages (each load times a reclaim itself: delays differ by the
//     programs' own run time).
//
// It is not a TestKernel* test: hosttest and the kernel lab do not run it.
// make soaktest (part of make test) runs the default size, make soak the
// full one.
func TestSoak(t *testing.T) {
	n := soakEnv(t, soakLifecyclesEnv, soakLifecycles)
	workers := soakEnv(t, soakWorkersEnv, soakWorkers)
	l := newLab(t)
	s := &soak{t: t, h: l.h, n: n, removed: make([]atomic.Int64, n)}
	rels := []string{"jobs"}
	for k := range workers {
		rels = append(rels, fmt.Sprintf("jobs/w%d", k))
	}
	s.top = testenv.Cgroups(t, l.h, rels...)
	s.jobs = s.top.Child("jobs")
	for k := range workers {
		s.workers = append(s.workers, s.jobs.Child(fmt.Sprintf("w%d", k)))
	}
	t.Cleanup(s.removeLeftovers) // before the workers' parents go
	for _, c := range append([]cgroup.Cgroup{s.top, s.jobs}, s.workers...) {
		if _, err := l.h.EnableMemory(c); err != nil {
			t.Fatal(err)
		}
	}

	// The second load is the test's own; serve loads at the lab's pin path.
	second := testenv.LoadOptions(t, l.h, loader.Auto, 0)
	second.PinPath += "-second"
	testenv.CleanupPinPath(t, second.PinPath)
	rec, err := loader.Load(second)
	if err != nil {
		t.Fatal(err)
	}
	if s.second, err = readout.Open(second.PinPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.second.Close)
	srv := startCLI(t, "serve", s.top.Rel, "--depth=-1", "--pin-path", l.pinPath, "--web.listen-address=127.0.0.1:0")
	s.addr = srv.serveAddr(t)
	if !strings.Contains(srv.stderr.String(), `msg="loaded the collectors; unloading them on exit"`) {
		t.Fatalf("serve did not load the collectors itself:\n%s", srv.stderr)
	}
	s.pinPath = l.pinPath
	if s.served, err = readout.Open(l.pinPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.served.Close)
	t.Logf("%d lifecycles, %d workers, flush mode %s (serve's) and %s (the second load)", n, workers, s.served.Record.Flush, rec.Flush)

	stop := make(chan struct{})
	var bg sync.WaitGroup
	for _, f := range []func(chan struct{}){s.scrapeLoop, s.readLoop, s.watchLoop} {
		bg.Add(1)
		go func() { defer bg.Done(); f(stop) }()
	}
	start := time.Now()
	s.sums = make([]reclaim.Stat, workers)
	s.removedIDs = make([][]uint64, workers)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); s.work(k) }()
	}
	wg.Wait()
	s.churnTook = time.Since(start)
	close(stop)
	bg.Wait()
	if t.Failed() {
		return
	}
	s.final()
	// Then serve stops as systemd stops it, and unloads what it loaded
	// (the test's own reader of that load goes first: unload waits until
	// the kernel has freed the programs).
	s.served.Close()
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d on SIGTERM:\n%s", code, srv.stderr)
	}
	if _, err := os.Stat(l.pinPath); err == nil {
		t.Errorf("serve loaded the collectors but left %s behind", l.pinPath)
	}
}

type soak struct {
	t                 *testing.T
	h                 *cgroup.Hierarchy
	n                 int
	top, jobs         cgroup.Cgroup
	workers           []cgroup.Cgroup
	pinPath, addr     string
	served, second    *readout.Handle
	removed           []atomic.Int64 // when lifecycle i's rmdir returned (UnixNano), 0 before
	done, jobsRun     atomic.Int64
	sums              []reclaim.Stat // per worker: what its removed children recorded (second load)
	removedIDs        [][]uint64     // per worker
	churnTook         time.Duration
	failed            atomic.Bool  // a worker or a loop failed: the workers stop
	next, scrapes     atomic.Int64 // the next lifecycle to start; scrapes done
	stale             int
	staleExample      string
	rss               []int64 // KiB, one per scrape
	lostSeen          float64 // the largest lost counter of any scrape
	scrapeMax         time.Duration
	reads, watches    int
	readMax, watchMax time.Duration
}

// perScrape is how many lifecycles may start per scrape at most. A node
// scraped every 15 s sees more scrapes than cgroup lifecycles (a month is
// 173,000 scrapes); here lifecycles go faster than scrapes, so they wait
// for them: at least one scrape per ten lifecycles.
const perScrape = 10

// work runs lifecycles below worker k's parent until all have started.
func (s *soak) work(k int) {
	t := s.t
	w := s.workers[k]
	defer func() {
		if t.Failed() {
			s.failed.Store(true) // the other workers stop too
		}
	}()
	exe := cliExe(t)
	version := strconv.Itoa(s.h.Version)
	for !s.failed.Load() {
		i := int(s.next.Add(1) - 1)
		if i >= s.n {
			return
		}
		for int64(i) >= perScrape*s.scrapes.Load() && !s.failed.Load() {
			time.Sleep(time.Millisecond)
		}
		c := w.Child("c" + strconv.Itoa(i))
		if err := c.Mkdir(); err != nil {
			t.Error(err)
			return
		}
		id, err := cgroup.ID(c)
		if err != nil {
			t.Error(err)
			return
		}
		if i%10 == 0 {
			// Page cache on tmpfs (no swap: the reclaim runs and takes
			// nothing), every tenth job on disk where pages are reclaimed.
			dir := "/dev/shm"
			if i%100 == 0 || !exists(dir) {
				dir = os.TempDir()
			}
			if out, err := exec.Command(exe, jobCommand, c.Path, version, dir).CombinedOutput(); err != nil {
				t.Errorf("job in %s: %v: %s", c.Rel, err, out)
				return
			}
			s.jobsRun.Add(1)
		}
		st, err := s.second.ReadOne(c)
		if err != nil {
			t.Errorf("reading %s before its removal: %v", c.Rel, err)
			return
		}
		if err := c.RemoveWait(5 * time.Second); err != nil { // the job's exit may lag its wait
			t.Error(err)
			return
		}
		s.removed[i].Store(time.Now().UnixNano())
		s.removedIDs[k] = append(s.removedIDs[k], id)
		s.sums[k].Add(&st)
		if d := s.done.Add(1); d%max(int64(s.n/10), 1) == 0 {
			t.Logf("%d lifecycles done", d)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// removeLeftovers removes the churned cgroups a failed run left.
func (s *soak) removeLeftovers() {
	for _, w := range s.workers {
		names, _ := w.Children()
		for _, name := range names {
			if err := w.Child(name).RemoveWait(10 * time.Second); err != nil {
				s.t.Error(err)
			}
		}
	}
}

var (
	sampleLine   = regexp.MustCompile(`(?m)^(\w+(?:\{[^}]*\})?) (\S+)$`)
	churnedIndex = regexp.MustCompile(`/w\d+/c(\d+)$`)
)

// samples maps each sample of a scrape (name with labels) to its value.
func samples(body string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range sampleLine.FindAllStringSubmatch(body, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err == nil {
			out[m[1]] = v
		}
	}
	return out
}

// repeat runs step until stop, every interval (0: back to back); its
// first error fails the soak.
func (s *soak) repeat(stop chan struct{}, interval time.Duration, step func() error) {
	var tick <-chan time.Time
	if interval > 0 {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		if tick != nil {
			select {
			case <-stop:
				return
			case <-tick:
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
		if err := step(); err != nil {
			s.fail("%v", err)
			return
		}
	}
}

// scrapeLoop scrapes serve back to back until stop. A scrape that started
// after a cgroup's removal must not have its series.
func (s *soak) scrapeLoop(stop chan struct{}) {
	s.repeat(stop, 0, func() error {
		start := time.Now()
		n := s.scrapes.Load() + 1
		body, err := tryScrape(s.addr)
		if err != nil {
			return fmt.Errorf("scrape %d: %w", n, err)
		}
		s.scrapeMax = max(s.scrapeMax, time.Since(start))
		for path := range exported(body) {
			m := churnedIndex.FindStringSubmatch(path)
			if m == nil || !strings.HasPrefix(path, s.jobs.Rel+"/") {
				continue
			}
			i, err := strconv.Atoi(m[1])
			if err != nil || i >= len(s.removed) {
				return fmt.Errorf("scrape %d: a cgroup the soak did not make: %s", n, path)
			}
			if at := s.removed[i].Load(); at != 0 && at < start.UnixNano() {
				s.stale++
				if s.staleExample == "" {
					s.staleExample = fmt.Sprintf("%s, removed %v before the scrape started", path, start.Sub(time.Unix(0, at)))
				}
			}
		}
		v := samples(body)
		rss, ok := v["process_resident_memory_bytes"]
		if !ok {
			return fmt.Errorf("scrape %d has no process_resident_memory_bytes", n)
		}
		s.rss = append(s.rss, int64(rss/1024))
		for _, kind := range []string{"events", "removed_deltas", "waited_deltas", "rstat_marks"} {
			key := fmt.Sprintf("cgrstat_lost_updates_total{kind=%q}", kind)
			lost, ok := v[key]
			if !ok {
				return fmt.Errorf("scrape %d has no %s", n, key)
			}
			s.lostSeen = max(s.lostSeen, lost)
		}
		s.scrapes.Add(1) // lets the next lifecycles start
		return nil
	})
}

// readLoop runs read --all of the top every second until stop; the top's
// count never goes down.
func (s *soak) readLoop(stop chan struct{}) {
	var last uint64
	s.repeat(stop, time.Second, func() error {
		start := time.Now()
		out, err := s.cgrstat("read", "--all", "--json", s.top.Rel)
		s.readMax = max(s.readMax, time.Since(start))
		var read struct{ Cgroups []reclaim.Stat }
		if err == nil {
			err = json.Unmarshal(out, &read)
		}
		if err == nil && (len(read.Cgroups) < 2+len(s.workers) || read.Cgroups[0].Count < last) {
			err = fmt.Errorf("%d cgroups, the top's count %d after %d", len(read.Cgroups), read.Cgroups[0].Count, last)
		}
		if err != nil {
			return fmt.Errorf("read --all %d: %w", s.reads+1, err)
		}
		last = read.Cgroups[0].Count
		s.reads++
		return nil
	})
}

// watchLoop runs watch in batch, 5 frames a second apart, until stop.
func (s *soak) watchLoop(stop chan struct{}) {
	const frames = 5
	s.repeat(stop, 0, func() error {
		start := time.Now()
		out, err := s.cgrstat("watch", s.top.Rel, "--depth=-1", "--count="+strconv.Itoa(frames), "--interval=1s", "--flat")
		s.watchMax = max(s.watchMax, time.Since(start))
		if n := bytes.Count(out, []byte("cgrstat watch ")); err == nil && n != frames {
			err = fmt.Errorf("%d frames, want %d:\n%s", n, frames, out)
		}
		if err != nil {
			return fmt.Errorf("watch %d: %w", s.watches+1, err)
		}
		s.watches++
		return nil
	})
}

// cgrstat runs the CLI as a process of its own, at serve's pin path.
func (s *soak) cgrstat(args ...string) ([]byte, error) {
	cmd := exec.Command(cliExe(s.t), append(args, "--pin-path", s.pinPath)...)
	cmd.Env = append(os.Environ(), asCgrstatEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func (s *soak) fail(format string, args ...any) {
	s.t.Errorf(format, args...)
	s.failed.Store(true)
}

// final checks what the run left and prints the table.
func (s *soak) final() {
	t := s.t
	var rows [][3]string // figure, value, verdict
	row := func(ok bool, figure, format string, args ...any) {
		verdict := "ok"
		if !ok {
			verdict = "FAIL"
			t.Errorf("%s: %s", figure, fmt.Sprintf(format, args...))
		}
		rows = append(rows, [3]string{figure, fmt.Sprintf(format, args...), verdict})
	}
	rate := float64(s.n) / s.churnTook.Seconds()
	row(true, "lifecycles", "%d in %v (%.0f/s), %d with a reclaiming job, %d workers",
		s.n, s.churnTook.Round(time.Second), rate, s.jobsRun.Load(), len(s.workers))
	minScrapes := max(s.n/10, 1)
	scrapes := s.scrapes.Load()
	row(scrapes >= int64(minScrapes), "scrapes of serve", "%d (at least %d), %.0f/s, slowest %v",
		scrapes, minScrapes, float64(scrapes)/s.churnTook.Seconds(), s.scrapeMax.Round(time.Millisecond))
	secs := int(s.churnTook.Seconds())
	row(s.reads >= secs/2, "read --all, every second", "%d runs, slowest %v", s.reads, s.readMax.Round(time.Millisecond))
	row(s.watches >= 1, "watch --count 5 in batch", "%d runs, slowest %v", s.watches, s.watchMax.Round(time.Millisecond))

	tenth := max(len(s.rss)/10, 1)
	first, last := median(s.rss[:tenth]), median(s.rss[len(s.rss)-tenth:])
	row(last <= first+first/10, "serve RSS, median of first / last tenth", "%.1f / %.1f MiB (%+.1f%%), peak %.1f MiB",
		mib(first), mib(last), 100*float64(last-first)/float64(first), mib(slices.Max(s.rss)))
	var tenths []string // a leak grows tenth after tenth; the heap's settling only at first
	for i := range 10 {
		tenths = append(tenths, fmt.Sprintf("%.1f", mib(median(s.rss[i*len(s.rss)/10:max((i+1)*len(s.rss)/10, i*len(s.rss)/10+1)]))))
	}
	row(true, "serve RSS, median of each tenth (MiB)", "%s", strings.Join(tenths, " "))

	// Entries now, against what the kernel holds before and after.
	live0, dying0 := memcgs(t, s.h)
	servedEntries, err := s.served.CopyStats()
	if err != nil {
		t.Fatal(err)
	}
	secondEntries, err := s.second.CopyStats()
	if err != nil {
		t.Fatal(err)
	}
	live1, dying1 := memcgs(t, s.h)
	bound, dying := max(live0+dying0, live1+dying1), max(dying0, dying1)
	var ids []uint64
	for _, w := range s.removedIDs {
		ids = append(ids, w...)
	}
	for _, e := range []struct {
		load          string
		entries, left int
	}{{"serve's load", len(servedEntries), removedLeft(servedEntries, ids)}, {"second load", len(secondEntries), removedLeft(secondEntries, ids)}} {
		row(e.entries <= bound && e.left <= dying, "stats map entries, "+e.load,
			"%d (live + dying memcgs: %d + %d), %d of them removed soak cgroups", e.entries, max(live0, live1), dying, e.left)
	}

	lost := func(p *readout.Handle) readout.Lost {
		l, err := p.LostCounts()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ls, l2 := lost(s.served), lost(s.second)
	lostRow := func(l readout.Lost) string {
		return fmt.Sprintf("%d/%d/%d/%d/%d", l.Events, l.TaskStorage, l.RemovedDeltas, l.WaitedDeltas, l.RstatMarks)
	}
	row(s.lostSeen == 0 && !ls.Any() && ls.WaitedDeltas == 0 && !l2.Any() && l2.WaitedDeltas == 0,
		"lost: events/task storage/removed/waited/rstat", "largest in any scrape %v; at the end serve's load %s, second load %s", s.lostSeen, lostRow(ls), lostRow(l2))
	row(s.stale == 0, "series of removed cgroups in a later scrape", "%d %s", s.stale, s.staleExample)

	// Ancestors: the second load's stat files hold exactly what the removed
	// children recorded; serve's final scrape the same counts and pages.
	body, err := tryScrape(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	v := samples(body)
	var all reclaim.Stat
	for k := range s.workers {
		all.Add(&s.sums[k])
	}
	for i, c := range append([]cgroup.Cgroup{s.top, s.jobs}, s.workers...) {
		want := all
		if i >= 2 {
			want = s.sums[i-2]
		}
		got, err := s.second.ReadOne(c)
		if err != nil {
			t.Fatal(err)
		}
		got.ID, got.Path = 0, ""
		label := c.Rel
		name := strings.TrimPrefix(label, s.top.Rel)
		if name == "" {
			name = "(top)"
		}
		series := func(family string) float64 { return v[fmt.Sprintf("%s{cgroup=%q}", family, label)] }
		sc, sp, sf := series("cgrstat_memcg_reclaims_total"), series("cgrstat_memcg_reclaimed_pages_total"), series("cgrstat_forced_reclaims_total")
		row(got.Equal(want) && sc == float64(want.Count) && sp == float64(want.Reclaimed) && sf == float64(want.Forced.Count),
			"ancestor "+name+": reclaims/pages/forced", "removed children recorded %d/%d/%d (%v); second load %d/%d/%d, every field equal: %v; serve %v/%v/%v",
			want.Count, want.Reclaimed, want.Forced.Count, time.Duration(want.DelayNS).Round(time.Microsecond),
			got.Count, got.Reclaimed, got.Forced.Count, got.Equal(want), sc, sp, sf)
	}
	if all.Count == 0 {
		t.Error("no reclaim recorded: the jobs did not reclaim")
	}

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "soak\tfigure\tverdict")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r[0], r[1], r[2])
	}
	tw.Flush()
	t.Logf("\n%s", b.String())
}

// removedLeft is how many of the removed cgroups ids still have an entry.
func removedLeft[V any](entries map[uint64]V, ids []uint64) int {
	left := 0
	for _, id := range ids {
		if _, ok := entries[id]; ok {
			left++
		}
	}
	return left
}

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// memcgs counts the machine's memory cgroups: live ones (directories of
// the hierarchy) and dying ones (removed, still held by the kernel): on v1
// /proc/cgroups counts both together, on v2 the root's cgroup.stat each.
func memcgs(t *testing.T, h *cgroup.Hierarchy) (live, dying int) {
	t.Helper()
	if h.Version == 2 {
		st, err := os.ReadFile(h.Mount + "/cgroup.stat")
		if err != nil {
			t.Fatal(err)
		}
		var nr, nrDying int
		for _, line := range strings.Split(string(st), "\n") {
			fmt.Sscanf(line, "nr_descendants %d", &nr)
			fmt.Sscanf(line, "nr_dying_descendants %d", &nrDying)
		}
		return nr + 1, nrDying
	}
	procs, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		t.Fatal(err)
	}
	all := -1
	for _, line := range strings.Split(string(procs), "\n") {
		var hier, enabled int
		if _, err := fmt.Sscanf(line, "memory %d %d %d", &hier, &all, &enabled); err == nil {
			break
		}
	}
	if all < 0 {
		t.Fatal("no memory line in /proc/cgroups")
	}
	// Other tests may remove cgroups meanwhile: those are skipped.
	filepath.WalkDir(h.Mount, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			live++
		}
		return nil
	})
	return live, max(all-live, 0)
}
