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
			results[i], errs[i] = runChild(ctx, h, j, opts)
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

func runChild(ctx context.Context, h *cgroup.Hierarchy, j Job, opts Options) (Result, error) {
	res := Result{Cgroup: j.Cgroup.Rel, Size: j.Size, Rounds: j.Rounds}
	cmd := exec.CommandContext(ctx, opts.Exe, ChildCommand, j.Cgroup.Path,
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
	if err != nil {
		return res, fmt.Errorf("stress in %s: %s", j.Cgroup.Rel, childError(err, stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &res.Report); err != nil {
		return res, fmt.Errorf("stress in %s: bad report %q: %w", j.Cgroup.Rel, stdout.String(), err)
	}
	return res, nil
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
