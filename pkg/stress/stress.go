// Package stress induces memory-cgroup reclaim: per leaf, a child process
// joins the cgroup, fills page cache of the given size, and makes the
// kernel reclaim it.
package stress

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/cgtree"
)

// Job is the pressure for one cgroup.
type Job struct {
	Cgroup cgroup.Cgroup
	Size   int64
	Rounds int
}

// Result is what one child did.
type Result struct {
	Cgroup string        `json:"cgroup"`
	Size   int64         `json:"size"`
	Rounds int           `json:"rounds"`
	Report ChildReport   `json:"report"`
	Time   time.Duration `json:"duration_ns"`
}

// Options configure Run.
type Options struct {
	Parallel int
	// ScratchDir holds the children's page-cache files.
	ScratchDir string
	// Progress, when set, is called after each finished job.
	Progress func(done, total int)
	// Exe is the cgrstat binary that runs the children (default: this one).
	Exe string
	// Flusher is the load that measures the reclaim, nil if none. On v1 a
	// scratch cgroup's totals reach its target only through a flush before
	// the scratch cgroup goes (an iterator never visits a removed cgroup).
	Flusher Flusher
}

// Flusher flushes a subtree of the load: a *readout.Handle. A removed
// cgroup's entry needs no care: the BPF side hands its reclaim to its
// parent at rmdir and deletes the entry when the kernel releases it.
type Flusher interface {
	Flush(c cgroup.Cgroup) error
}

// ChildCommand is the hidden subcommand that runs one child.
const ChildCommand = "__stress-child"

// BudgetError says that the pressure asked for would endanger the machine.
type BudgetError struct{ Peak, Available int64 }

func (e *BudgetError) Error() string {
	return fmt.Sprintf("stress would hold %d MiB at once, more than half of MemAvailable (%d MiB): lower --size or --parallel",
		e.Peak>>20, e.Available>>20)
}

// Run runs the jobs, at most opts.Parallel at a time. It refuses pressure
// whose peak exceeds half of MemAvailable. On error or cancellation every
// child is killed and waited for.
func Run(ctx context.Context, h *cgroup.Hierarchy, jobs []Job, opts Options) ([]Result, error) {
	if opts.Parallel < 1 {
		opts.Parallel = 1
	}
	if err := checkBudget(jobs, opts.Parallel); err != nil {
		return nil, err
	}
	if opts.Exe == "" {
		opts.Exe = "/proc/self/exe"
	}
	parent := ctx
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	results := make([]Result, len(jobs))
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = runJob(ctx, h, i, j, opts)
			if errs[i] != nil {
				cancel()
			}
			mu.Lock()
			done++
			if opts.Progress != nil {
				opts.Progress(done, len(jobs))
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return results, err
	}
	return results, parent.Err()
}

// firstError is the first error of a child, not counting the cancellations
// it caused in the others.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

// checkBudget bounds the peak: the parallel largest jobs at once.
func checkBudget(jobs []Job, parallel int) error {
	sizes := make([]int64, len(jobs))
	for i, j := range jobs {
		sizes[i] = j.Size
	}
	sort.Slice(sizes, func(a, b int) bool { return sizes[a] > sizes[b] })
	var peak int64
	for i := 0; i < len(sizes) && i < parallel; i++ {
		peak += sizes[i]
	}
	avail, err := memAvailable()
	if err != nil {
		return err
	}
	if peak > avail/2 {
		return &BudgetError{Peak: peak, Available: avail}
	}
	return nil
}

func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("reading MemAvailable: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no MemAvailable in /proc/meminfo")
}

// runJob runs one child. On v1 the child runs in a scratch cgroup made
// below the job's cgroup, the only cgroup whose limit it lowers; the scratch
// cgroup is removed however the child ends.
func runJob(ctx context.Context, h *cgroup.Hierarchy, n int, j Job, opts Options) (res Result, err error) {
	where := j.Cgroup
	if h.Version == 1 {
		if where, err = cgroup.NewScratch(j.Cgroup, n); err != nil {
			return Result{Cgroup: j.Cgroup.Rel}, err
		}
		defer func() { err = errors.Join(err, retire(where, j.Cgroup, opts.Flusher)) }()
	}
	oomBefore := oomKills(where, h.Version)
	res, err = runChild(ctx, h, where, j, opts)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		err = fmt.Errorf("stress in %s: %s", j.Cgroup.Rel, childDeath(exit, oomKills(where, h.Version)-oomBefore))
	}
	return res, err
}

// retire hands the scratch cgroup's totals to its parent and removes it.
func retire(scratch, parent cgroup.Cgroup, fl Flusher) error {
	if fl != nil {
		if err := fl.Flush(parent); err != nil {
			_ = scratch.RemoveWait(5 * time.Second)
			return err
		}
	}
	return scratch.RemoveWait(5 * time.Second)
}

// Recover removes the scratch cgroups that an interrupted stress left below
// the jobs' cgroups (cgroup v1 only) and returns their paths.
func Recover(h *cgroup.Hierarchy, jobs []Job) ([]string, error) {
	if h.Version != 1 {
		return nil, nil
	}
	var removed []string
	for _, j := range jobs {
		r, err := cgroup.RemoveStaleScratch(j.Cgroup)
		removed = append(removed, r...)
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

func runChild(ctx context.Context, h *cgroup.Hierarchy, where cgroup.Cgroup, j Job, opts Options) (Result, error) {
	res := Result{Cgroup: j.Cgroup.Rel, Size: j.Size, Rounds: j.Rounds}
	cmd := exec.CommandContext(ctx, opts.Exe, ChildCommand, where.Path,
		strconv.FormatInt(j.Size, 10), strconv.Itoa(j.Rounds), strconv.Itoa(h.Version), opts.ScratchDir)
	// The child dies with us, even if we are killed without a chance to clean
	// up. Pdeathsig follows the creating thread, so keep this goroutine on it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res.Time = time.Since(start)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && !exit.Exited() {
		return res, err // killed: runJob says by what
	}
	if err != nil {
		return res, fmt.Errorf("stress in %s: %s", j.Cgroup.Rel, childError(err, stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &res.Report); err != nil {
		return res, fmt.Errorf("stress in %s: bad report %q: %w", j.Cgroup.Rel, stdout.String(), err)
	}
	return res, nil
}

// childDeath says which signal ended a child and, when the kernel counted an
// OOM kill in its cgroup meanwhile, that it was the OOM killer.
func childDeath(exit *exec.ExitError, ooms int64) string {
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return exit.Error()
	}
	sig := ws.Signal()
	msg := fmt.Sprintf("the child was killed by %s", unix.SignalName(sig))
	switch {
	case sig == syscall.SIGKILL && ooms > 0:
		msg += " from the OOM killer (the cgroup's memory limit is too low for the stress size)"
	case sig == syscall.SIGKILL:
		msg += " (not by the OOM killer: by another process)"
	}
	return msg
}

// oomKills is the cgroup's count of OOM kills: oom_kill in memory.oom_control
// (v1) or memory.events (v2); -1 when the kernel does not say.
func oomKills(c cgroup.Cgroup, version int) int64 {
	file := "memory.events"
	if version == 1 {
		file = "memory.oom_control"
	}
	s, err := c.Read(file)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

func childError(err error, stderr string) string {
	if s := strings.TrimSpace(stderr); s != "" {
		return strings.TrimPrefix(s, "cgrstat: ")
	}
	return err.Error()
}

// TreeJobs makes one job per leaf of the tree, with the spec's sizes
// unless size or rounds override them.
func TreeJobs(t cgtree.Tree, size int64, rounds int) []Job {
	var jobs []Job
	for _, l := range t.Spec.Leaves() {
		j := Job{Cgroup: t.Cgroup(l.Rel), Size: int64(l.Node.Stress.Size), Rounds: l.Node.Stress.Rounds}
		if size > 0 {
			j.Size = size
		}
		if rounds > 0 {
			j.Rounds = rounds
		}
		jobs = append(jobs, j)
	}
	return jobs
}
