package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/syncbuf"
	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// traceLine is one line of trace --json.
type traceLine struct {
	Time       time.Time `json:"time"`
	PID        int       `json:"pid"`
	TID        int       `json:"tid"`
	Comm       string    `json:"comm"`
	Cgroup     *string   `json:"cgroup"`
	CgroupID   uint64    `json:"cgroup_id"`
	Target     *string   `json:"target"`
	TargetID   uint64    `json:"target_id"`
	Cause      string    `json:"cause"`
	DurationNS int64     `json:"duration_ns"`
	Reclaimed  uint64    `json:"reclaimed_pages"`
	CPU        int       `json:"cpu"`
	Stack      []string  `json:"stack"`
}

// traceProc is a cgrstat trace running as a process of its own.
type traceProc struct {
	*cliProc
	stdout *syncbuf.Buffer
}

// startTrace starts cgrstat trace and waits until it traces.
// startWithin bounds a trace's start, its load included.
const startWithin = 2 * time.Minute

func startTrace(t *testing.T, args ...string) *traceProc {
	t.Helper()
	out := &syncbuf.Buffer{}
	p := &traceProc{cliProc: startCLIOut(t, out, cliExe(t), append([]string{"trace"}, args...)...), stdout: out}
	// A trace that loads the collectors first waits for the verifier: up
	// to 30 s in the kernel lab's emulated arm64 guests (7.3 took longer
	// than the 30 s this allowed before).
	deadline := time.Now().Add(startWithin)
	for !strings.Contains(p.stderr.String(), "cgrstat trace: tracing") {
		select {
		case <-p.done:
			t.Fatalf("trace %v exited: %v\n%s", args, p.err, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %v did not start within %s:\n%s", args, startWithin, p.stderr)
		}
	}
	return p
}

// lines are the events trace printed, as JSON.
func (p *traceProc) lines(t *testing.T) []traceLine {
	t.Helper()
	var out []traceLine
	sc := bufio.NewScanner(bytes.NewReader(p.stdout.Bytes()))
	for sc.Scan() {
		var l traceLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("trace printed %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

var traceSummary = regexp.MustCompile(`cgrstat trace: (\d+) events, (\d+) dropped \(rate limit (\d+), ring buffer full (\d+)\)`)

// summary is what trace said on exit: events printed, dropped for the rate
// limit, dropped for a full ring buffer.
func (p *traceProc) summary(t *testing.T) (printed, rate, full int) {
	t.Helper()
	m := traceSummary.FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("trace said no summary on exit:\n%s", p.stderr)
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	return n(m[1]), n(m[3]), n(m[4])
}

// settle waits until trace has printed nothing new for a while: the
// events of a finished workload are out.
func (p *traceProc) settle() {
	for n := -1; n != len(p.stdout.Bytes()); {
		n = len(p.stdout.Bytes())
		time.Sleep(500 * time.Millisecond)
	}
}

// TestKernelTrace is issue 21's trace: while a known process writes page
// cache into a leaf with a low memory limit, two traces at once (one of
// the leaf's parent, one of every cgroup; the first loads the collectors,
// the second uses them) each print every one of the writer's reclaims:
// its pid and comm, the leaf as its cgroup and as the target, cause max,
// durations above 0 and pages; the durations, counts and pages summed
// equal what the leaf's aggregate gained over the same window, which has
// no reclaim straddling it (the leaf is quiet before the traces start and
// after they settle). SIGTERM ends each with exit 0, no drops, and the
// load the first made is gone.
func TestKernelTrace(t *testing.T) {
	l := newLab(t)
	requireReclaimableTmp(t)
	top, leaf := testenv.LimitedLeaf(t, l.h)
	pin := []string{"--pin-path", l.pinPath}
	sub := startTrace(t, append([]string{"--min", "0", "--json", "--rate", "0", top.Path}, pin...)...)
	if !strings.Contains(sub.stderr.String(), "loaded the collectors") {
		t.Errorf("the first trace did not load the collectors:\n%s", sub.stderr)
	}
	every := startTrace(t, append([]string{"--min", "0", "--json", "--rate", "0", "--stack"}, pin...)...)
	if !strings.Contains(every.stderr.String(), "using the collectors") {
		t.Errorf("the second trace did not use the first's load:\n%s", every.stderr)
	}
	before := readOne(t, l, leaf.Path)
	// Held until its events are checked: their TIDs are its threads.
	pid, comm, release := testenv.WriteAndHold(t, leaf, 48<<20)
	defer release()
	sub.settle()
	every.settle()
	after := readOne(t, l, leaf.Path)
	grew := causesSum(after)
	for i, v := range causesSum(before) {
		grew[i] -= v
	}
	for _, p := range []*traceProc{every, sub} { // sub last: it unloads
		if code := p.stop(t); code != 0 {
			t.Errorf("trace %v: exit %d after SIGTERM, want 0:\n%s", p.cmd.Args[1:], code, p.stderr)
		}
	}
	for _, p := range []*traceProc{sub, every} {
		var sum [3]uint64
		n := 0
		for _, e := range p.lines(t) {
			if e.Cgroup == nil || *e.Cgroup != leaf.Rel {
				continue // another cgroup's reclaim (the trace of every cgroup)
			}
			n++
			if e.PID != pid || !testenv.ThreadOf(pid, e.TID) || e.Comm != comm || e.Target == nil || *e.Target != leaf.Rel || e.Cause != "max" ||
				e.DurationNS <= 0 || time.Since(e.Time) > 5*time.Minute {
				t.Errorf("trace %v: event %+v; want pid %d (a thread of it as TID), comm %q, target %s, cause max", p.cmd.Args[1:], e, pid, comm, leaf.Rel)
			}
			// The stack starts below the tracepoint, in the reclaim.
			if p == every && (len(e.Stack) == 0 || !strings.HasPrefix(e.Stack[0], "try_to_free_mem_cgroup_pages+")) {
				t.Errorf("trace --stack: event whose stack does not start in try_to_free_mem_cgroup_pages: %+v", e)
			}
			sum[0] += uint64(e.DurationNS)
			sum[1]++
			sum[2] += e.Reclaimed
		}
		if sum != grew || sum[2] == 0 {
			t.Errorf("trace %v: %d events of %s sum to delay %d ns, count %d, pages %d; its aggregate grew by %v",
				p.cmd.Args[1:], n, leaf.Rel, sum[0], sum[1], sum[2], grew)
		}
		if printed, rate, full := p.summary(t); printed != len(p.lines(t)) || rate+full != 0 {
			t.Errorf("trace %v: summary says %d printed, %d and %d dropped; it printed %d", p.cmd.Args[1:], printed, rate, full, len(p.lines(t)))
		}
		t.Logf("trace %v: %d events of the leaf, delay %d ns, pages %d", p.cmd.Args[1:], n, sum[0], sum[2])
	}
	if len(every.lines(t)) > 0 {
		t.Logf("a stack: %v", every.lines(t)[0].Stack)
	}
}

// causesSum is a cgroup's every reclaim: delay, count, pages.
func causesSum(s reclaim.Stat) [3]uint64 {
	var c reclaim.Counters
	for _, x := range s.Causes {
		c = c.Add(x)
	}
	return [3]uint64{c.DelayNS, c.Count, c.Reclaimed}
}

// TestKernelTraceStorm: a storm of reclaims against --rate 1 prints at most
// the burst (1) and 1 a second (slow emulated guests take seconds for the
// storm), and the summary on exit counts the rest as dropped by the rate
// limit; a trace using that trace's load ends with exit 1 and says why
// when the load goes (an unload had left it waiting for ever, silent);
// --count ends trace by itself, exit 0.
func TestKernelTraceStorm(t *testing.T) {
	l := newLab(t)
	requireReclaimableTmp(t)
	top, leaf := testenv.LimitedLeaf(t, l.h)
	pin := []string{"--pin-path", l.pinPath}
	limited := startTrace(t, append([]string{"--min", "0", "--json", "--rate", "1", leaf.Path}, pin...)...)
	bystander := startTrace(t, append([]string{"--min", "10s", leaf.Path}, pin...)...)
	var st struct {
		Subscribers []struct {
			PID     int    `json:"pid"`
			Command string `json:"command"`
			MinNS   uint64 `json:"min_ns"`
			Cgroups int    `json:"cgroups"`
		} `json:"subscribers"`
	}
	if err := json.Unmarshal([]byte(l.run("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if s := st.Subscribers; len(s) != 2 || s[1].PID != bystander.cmd.Process.Pid || s[1].MinNS != 10e9 || s[1].Cgroups != 1 || s[1].Command == "" {
		t.Errorf("status --json: subscribers %+v, want two traces, the second pid %d, 10s, 1 cgroup", s, bystander.cmd.Process.Pid)
	}
	start := time.Now()
	testenv.WriteIn(t, leaf, 48<<20)
	elapsed := time.Since(start)
	limited.settle()
	if code := limited.stop(t); code != 0 {
		t.Errorf("trace: exit %d after SIGTERM:\n%s", code, limited.stderr)
	}
	select { // limited unloaded what it loaded on exit
	case <-bystander.done:
		if code := bystander.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(bystander.stderr.String(), "unloaded") {
			t.Errorf("trace after an unload of its load: exit %d, want 1 and why:\n%s", code, bystander.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("trace still runs 10s after its load was unloaded:\n%s", bystander.stderr)
	}
	printed, rate, full := limited.summary(t)
	most := 1 + int(elapsed.Seconds()+1)
	t.Logf("storm in %s: %d printed, %d dropped for the rate, %d for a full ring", elapsed, printed, rate, full)
	if printed != len(limited.lines(t)) || printed == 0 || printed > most || rate == 0 || full != 0 {
		t.Errorf("--rate 1 over %s: printed %d (%d lines), dropped %d for the rate, %d for a full ring; want 1 to %d printed and drops for the rate",
			elapsed, printed, len(limited.lines(t)), rate, full, most)
	}

	// A leaf of its own: the first writer left pages charged to the first
	// that reclaim cannot take (its binary, where the root file system is
	// tmpfs, as in the lab's guests), and a second writer there was
	// OOM-killed (6.12).
	second := top.Child("second")
	if err := second.Mkdir(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := second.Remove(); err != nil {
			t.Errorf("removing test cgroup: %v", err)
		}
	})
	testenv.SetLimit(t, l.h, second)
	// On the test binary's shared load: the first trace unloaded its own,
	// and another load of the collectors cost 25-35 s of the 7.3 arm64
	// guest's verifier (2026-12-03).
	shared := sharedLab(t)
	counted := startTrace(t, "--min", "0", "--count", "3", second.Path, "--pin-path", shared.pinPath)
	testenv.WriteIn(t, second, 48<<20)
	select {
	case <-counted.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("trace --count 3 did not end by itself:\n%s", counted.stderr)
	}
	if code := counted.cmd.ProcessState.ExitCode(); code != 0 || strings.Count(counted.stdout.String(), "\n") != 3 {
		t.Errorf("trace --count 3: exit %d, printed:\n%s%s", code, counted.stdout, counted.stderr)
	}
}
