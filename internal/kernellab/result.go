package kernellab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Markers the init script prints. They are unlikely to occur in test output
// and the parser finds them anywhere on a line, because a kernel message can
// land in front of them on the serial console.
const (
	markStart  = "CGRSTAT-LAB-START"
	markTest   = "CGRSTAT-LAB-TEST"
	markResult = "CGRSTAT-LAB-RESULT"
	markError  = "CGRSTAT-LAB-ERROR"
	markBegin  = "CGRSTAT-LAB-BEGIN"
)

// Reasons a boot fails; match them with errors.Is.
var (
	ErrTimeout     = errors.New("guest timed out")
	ErrKernelPanic = errors.New("kernel panicked")
	ErrKernelBug   = errors.New("kernel reported a BUG or Oops")
	ErrNoResult    = errors.New("guest printed no result line")
	ErrTestsFailed = errors.New("tests failed")
)

// TestResult is what the guest reported for one test binary. The counts are
// "--- PASS/FAIL/SKIP" lines, subtests included.
type TestResult struct {
	Name             string
	Pass, Fail, Skip int
	Exit             int
}

// Result is what one boot produced.
type Result struct {
	Release string // uname -r in the guest
	Machine string // uname -m in the guest
	Cgroup  string // v1 or v2: what the memory controller is mounted on
	TmpDir  string // the file system type of the guest's TMPDIR

	Tests            []TestResult
	Pass, Fail, Skip int
	Exit             int  // non-zero if any test binary exited non-zero
	Complete         bool // the final result line was seen
	Panic            string
	Bugs             []string
	GuestErrors      []string
	TimedOut         bool
	Duration         time.Duration
	Console          []byte
}

// kernelBug matches the first line of a BUG or Oops report. printk's
// timestamp prefix keeps test output that mentions "BUG:" from matching.
var kernelBug = regexp.MustCompile(`^\[\s*\d+\.\d+\] (BUG: |Oops: |Oops\b)`)

// ParseConsole extracts the guest's report from its serial console output.
func ParseConsole(console []byte) Result {
	var r Result
	sc := bufio.NewScanner(bytes.NewReader(console))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		parseLine(&r, strings.TrimRight(sc.Text(), "\r"))
	}
	r.Console = console
	return r
}

func parseLine(r *Result, line string) {
	switch {
	case strings.Contains(line, "Kernel panic - not syncing"):
		if r.Panic == "" {
			r.Panic = strings.TrimSpace(line)
		}
	case kernelBug.MatchString(line):
		r.Bugs = append(r.Bugs, line)
	case hasMark(line, markStart):
		f := fields(line, markStart)
		r.Release, r.Machine, r.Cgroup, r.TmpDir = f["kernel"], f["arch"], f["cgroup"], f["tmpdir"]
	case hasMark(line, markTest):
		f := fields(line, markTest)
		r.Tests = append(r.Tests, TestResult{
			Name: f["name"], Pass: atoi(f["pass"]), Fail: atoi(f["fail"]),
			Skip: atoi(f["skip"]), Exit: atoi(f["exit"]),
		})
	case hasMark(line, markResult):
		f := fields(line, markResult)
		r.Pass, r.Fail, r.Skip = atoi(f["pass"]), atoi(f["fail"]), atoi(f["skip"])
		r.Exit = atoi(f["exit"])
		r.Complete = f["exit"] != ""
	case hasMark(line, markError):
		_, msg, _ := strings.Cut(line, markError)
		r.GuestErrors = append(r.GuestErrors, strings.TrimSpace(msg))
	}
}

// hasMark requires the marker to be followed by a space so that the init
// script's own echo of a marker prefix is not taken for a report.
func hasMark(line, mark string) bool {
	return strings.Contains(line, mark+" ")
}

// fields parses the key=value words after mark.
func fields(line, mark string) map[string]string {
	_, rest, _ := strings.Cut(line, mark+" ")
	m := map[string]string{}
	for _, w := range strings.Fields(rest) {
		if k, v, ok := strings.Cut(w, "="); ok {
			m[k] = v
		}
	}
	return m
}

// atoi turns a malformed count into -1, which Err treats as a failure.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// Err tells why the boot failed, or nil if every test binary passed. Only a
// complete report with exit=0 and no failures is a pass.
func (r *Result) Err() error {
	switch {
	case r.Panic != "":
		return fmt.Errorf("%w: %s", ErrKernelPanic, r.Panic)
	case len(r.Bugs) > 0:
		return fmt.Errorf("%w: %s", ErrKernelBug, r.Bugs[0])
	case r.TimedOut:
		return fmt.Errorf("%w after %s", ErrTimeout, r.Duration.Round(time.Second))
	case len(r.GuestErrors) > 0:
		return fmt.Errorf("%w: guest init: %s", ErrNoResult, strings.Join(r.GuestErrors, "; "))
	case !r.Complete:
		return ErrNoResult
	case r.Exit != 0 || r.Fail != 0 || r.Pass < 0 || r.Skip < 0:
		return fmt.Errorf("%w: %s", ErrTestsFailed, r.failedBinaries())
	}
	return nil
}

func (r *Result) failedBinaries() string {
	var bad []string
	for _, t := range r.Tests {
		if t.Exit != 0 || t.Fail != 0 {
			bad = append(bad, fmt.Sprintf("%s (exit %d, %d failed)", t.Name, t.Exit, t.Fail))
		}
	}
	if len(bad) == 0 {
		return fmt.Sprintf("exit %d, %d failed", r.Exit, r.Fail)
	}
	return strings.Join(bad, ", ")
}

// Output returns what test binary name printed, from the guest's console.
func (r *Result) Output(name string) string {
	var out []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(r.Console))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case hasMark(line, markBegin):
			in = fields(line, markBegin)["name"] == name
		case hasMark(line, markTest):
			in = false
		case in:
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
