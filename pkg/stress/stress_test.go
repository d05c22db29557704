package stress

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// available reads MemAvailable, which checkBudget reads too; the jobs below
// keep wide margins around half of it, since it moves between the reads.
func available(t *testing.T) int64 {
	t.Helper()
	avail, err := memAvailable()
	if err != nil {
		t.Fatalf("memAvailable: %v", err)
	}
	if avail < 1<<20 {
		t.Fatalf("MemAvailable %d bytes is implausible", avail)
	}
	return avail
}

func jobsOf(sizes ...int64) []Job {
	var jobs []Job
	for i, s := range sizes {
		jobs = append(jobs, Job{Cgroup: cgroup.Cgroup{Rel: "/test/leaf" + string(rune('a'+i))}, Size: s, Rounds: 1})
	}
	return jobs
}

func TestCheckBudget(t *testing.T) {
	avail := available(t)
	frac := func(f float64) int64 { return int64(float64(avail) * f) }
	small, big := frac(0.05), frac(0.3)
	tests := []struct {
		name     string
		jobs     []Job
		parallel int
		ok       bool
	}{
		{"no jobs", nil, 4, true},
		{"small jobs", jobsOf(5<<20, 5<<20, 5<<20, 5<<20), 4, true},
		{"one job above half", jobsOf(frac(0.7)), 1, false},
		{"one job just over everything", jobsOf(avail + 1<<30), 1, false},
		// The total is 0.75 of MemAvailable, but one at a time peaks at 0.3.
		{"sequential large total", jobsOf(small, big, small, big, small), 1, true},
		// Two at a time: the two largest, 0.6, not the first two (0.35).
		{"the parallel largest count", jobsOf(small, big, small, big, small), 2, false},
		{"parallel above the number of jobs", jobsOf(small, small), 8, true},
		{"many small in parallel add up", jobsOf(frac(0.2), frac(0.2), frac(0.2)), 3, false},
		{"the same, two at a time", jobsOf(frac(0.2), frac(0.2), frac(0.2)), 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBudget(tt.jobs, tt.parallel)
			if tt.ok && err != nil {
				t.Fatalf("checkBudget refused: %v", err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatal("checkBudget accepted a peak above half of MemAvailable")
				}
				for _, want := range []string{"more than half of MemAvailable", "--size or --parallel"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
			}
		})
	}
}

// TestRunRefusesBeforeStarting checks that Run refuses too much pressure as a
// usage error, before it starts any child (the executable does not exist).
func TestRunRefusesBeforeStarting(t *testing.T) {
	avail := available(t)
	h := &cgroup.Hierarchy{Mount: t.TempDir(), Version: 2, Own: "/"}
	jobs := jobsOf(avail, avail)
	res, err := Run(context.Background(), h, jobs, Options{Parallel: 0, Exe: "/nonexistent/cgrstat"})
	if err == nil || !strings.Contains(err.Error(), "MemAvailable") {
		t.Fatalf("Run = %v, %v; want the budget refusal", res, err)
	}
	var budget *BudgetError
	if !errors.As(err, &budget) {
		t.Errorf("budget refusal %v is not a BudgetError", err)
	}
	if res != nil {
		t.Errorf("Run returned results %v with its refusal", res)
	}
}
