package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// Fault injection: each command is killed with SIGKILL at random points,
// then the documented recovery runs, and nothing of cgrstat's may be left:
// no cgroup, pin, process or program, and every setting as before.

// kills is how often each command is killed. The host runs the full 30. In
// the kernel lab's guests (QEMU TCG, some ten times slower, three kernels,
// and make vmtest gives each guest 5 minutes for every TestKernel* test of
// every package) 3 kills per command keep these tests near a minute and a
// half per guest: they still check every recovery on every kernel, with the
// number of kill points the host covers.
func kills() int {
	if testenv.Required() {
		return 3
	}
	return 30
}

// inGuest scales a size for the kernel lab's guests (see kills).
func inGuest(host, guest int) int {
	if testenv.Required() {
		return guest
	}
	return host
}

// proc is cgrstat run as a separate process (this test binary, see TestMain).
func proc(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), asCgrstatEnv+"=1")
	return c
}

// runProc runs cgrstat to completion.
func runProc(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	c := proc(args...)
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errOut.String(), code}
}

// killed lists the pids of the cgrstat processes each test killed, by
// test name (see assertNoLeftovers).
var killed sync.Map // string -> *[]int

// killAfter starts cgrstat, kills it with SIGKILL after delay and reports
// whether it was still running then.
func killAfter(t *testing.T, delay time.Duration, args ...string) bool {
	t.Helper()
	c := proc(args...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pids, _ := killed.LoadOrStore(t.Name(), new([]int))
	*pids.(*[]int) = append(*pids.(*[]int), c.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(delay):
	}
	_ = c.Process.Signal(syscall.SIGKILL)
	<-done
	return true
}

// signalWhen starts cgrstat, sends it sig once started() holds (a signal
// before cgrstat installs its handlers would find nothing made yet, and just
// end it) and returns what cgrstat printed.
func signalWhen(t *testing.T, sig syscall.Signal, started func() bool, args ...string) (stderr string, code int) {
	t.Helper()
	var errOut bytes.Buffer
	c := proc(args...)
	c.Stderr = &errOut
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !started() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	_ = c.Process.Signal(sig)
	err := c.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return errOut.String(), exit.ExitCode()
	}
	return errOut.String(), 0
}

// timed runs cgrstat to completion and returns how long it took; kills then
// land at random points up to that long, so that most hit a running command.
func timed(t *testing.T, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	if r := runProc(t, args...); r.code != 0 {
		t.Fatalf("cgrstat %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return time.Since(start)
}

func randDelay(max time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(max) + 1)) }

// tally counts kills that hit a running command and those that came late,
// and adapts the longest delay to how long the command runs now (the first,
// timed run may be slower or faster than the later ones).
type tally struct {
	hit, late int
	max       time.Duration
}

// delay is a random point within the command's run.
func (c *tally) delay() time.Duration { return randDelay(c.max) }

func (c *tally) add(hit bool) {
	if hit {
		c.hit++
		c.max += c.max / 10
	} else {
		c.late++
		c.max -= c.max / 4
	}
}

// more says whether to kill again: until kills() kills hit a running
// command, within four times as many tries.
func (c *tally) more() bool { return c.hit < kills() && c.hit+c.late < 4*kills() }

// enough fails the test if too few kills hit a running command.
func (c *tally) enough(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: killed %d times while running (%d kills came after it finished)", what, c.hit, c.late)
	if c.hit < kills() {
		t.Errorf("%s was killed while running only %d times, want %d", what, c.hit, kills())
	}
}

// settings are the memory settings of a cgroup cgrstat must not change.
func settings(t *testing.T, h *cgroup.Hierarchy, c cgroup.Cgroup) string {
	t.Helper()
	files := []string{"memory.max", "memory.high", "cgroup.subtree_control"}
	if h.Version == 1 {
		files = []string{"memory.limit_in_bytes", "memory.soft_limit_in_bytes"}
	}
	var b strings.Builder
	for _, f := range files {
		v, err := c.Read(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%s ", f, v)
	}
	return b.String()
}

// assertNoCgroupsBelow fails if c has any child (scratch cgroups included).
func assertNoCgroupsBelow(t *testing.T, c cgroup.Cgroup) {
	t.Helper()
	if names, err := c.Children(); err != nil || len(names) > 0 {
		t.Fatalf("left below %s: %v %v", c.Rel, names, err)
	}
}

// assertNoLeftovers fails if, after a recovery, cgrstat left anything in
// /run/cgrstat: the pin path's lock file while nothing is loaded there (a
// lock file exists only for a load, see loader.Lock), or an intent note
// (cgroup.Intend), whole or half-written, of a process this test killed:
// the recovery must have dealt with it and dropped it.
func assertNoLeftovers(t *testing.T, pinPath string) {
	t.Helper()
	if _, err := loader.ReadRecord(pinPath); err != nil {
		if _, err := os.Stat(readout.LockFile(pinPath)); err == nil {
			t.Fatalf("nothing is loaded at %s, but its lock file %s is left", pinPath, readout.LockFile(pinPath))
		}
	}
	pids, ok := killed.Load(t.Name())
	if !ok {
		return
	}
	entries, err := os.ReadDir(cgroup.IntentDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		for _, pid := range *pids.(*[]int) {
			if strings.HasPrefix(e.Name(), strconv.Itoa(pid)+"-") {
				b, _ := os.ReadFile(filepath.Join(cgroup.IntentDir, e.Name()))
				t.Fatalf("intent note %s of killed cgrstat %d left after the recovery: %q", e.Name(), pid, b)
			}
		}
	}
}

// assertNoPinPath fails if anything is left at the pin path.
func (l *lab) assertNoPinPath(ids []ebpf.ProgramID) {
	l.t.Helper()
	if _, err := os.Lstat(l.pinPath); err == nil {
		entries, _ := os.ReadDir(l.pinPath)
		l.t.Fatalf("pin path %s left, holding %v", l.pinPath, entries)
	}
	assertFreed(l.t, ids)
}

// assertFreed fails if one of the programs is still loaded.
func assertFreed(t *testing.T, ids []ebpf.ProgramID) {
	t.Helper()
	if err := loader.WaitFreed(ids); err != nil {
		t.Fatal(err)
	}
}

// sandbox is a cgroup of the test's own, below the default parent, that the
// commands under test use as --parent or target; settings are compared on it.
func (l *lab) sandbox() cgroup.Cgroup {
	c := l.parent().Child(fmt.Sprintf("cgrstat-%d-%s", os.Getpid(), strings.ToLower(strings.ReplaceAll(l.t.Name(), "/", "-"))))
	if err := c.Mkdir(); err != nil {
		l.t.Fatal(err)
	}
	if l.h.Version == 2 {
		if err := c.Write("cgroup.subtree_control", "+memory"); err != nil {
			l.t.Fatal(err)
		}
	}
	l.t.Cleanup(func() {
		if err := c.RemoveWait(5 * time.Second); err != nil {
			l.t.Errorf("removing the sandbox: %v", err)
		}
	})
	return c
}

func (l *lab) args(args ...string) []string { return append(args, "--pin-path", l.pinPath) }

// recordIDs returns the programs of the load at the pin path, if any.
func (l *lab) recordIDs() []ebpf.ProgramID {
	rec, err := loader.ReadRecord(l.pinPath)
	if err != nil {
		return nil
	}
	return rec.ProgramIDs
}

func TestKernelKillLoadUnload(t *testing.T) {
	l := newLab(t)
	loadTime := timed(t, l.args("load", "--flush", "walk")...)
	ids := l.recordIDs()
	unloadTime := timed(t, l.args("unload")...)
	assertFreed(t, ids)
	load, unload := tally{max: loadTime}, tally{max: unloadTime}
	for load.more() {
		load.add(killAfter(t, load.delay(), l.args("load", "--flush", "walk")...))
		ids := l.recordIDs()
		// Recovery: unload (exit 2 "not loaded" when the kill came before anything was pinned).
		if r := runProc(t, l.args("unload")...); r.code != 0 && !strings.Contains(r.stderr, "not loaded") {
			t.Fatalf("unload after a killed load: exit %d: %s", r.code, r.stderr)
		}
		l.assertNoPinPath(ids)
		assertNoLeftovers(t, l.pinPath)
	}
	for unload.more() {
		if r := runProc(t, l.args("load", "--flush", "walk")...); r.code != 0 {
			t.Fatalf("load: %s", r.stderr)
		}
		ids := l.recordIDs()
		unload.add(killAfter(t, unload.delay(), l.args("unload")...))
		if r := runProc(t, l.args("unload")...); r.code != 0 && !strings.Contains(r.stderr, "not loaded") {
			t.Fatalf("unload after a killed unload: exit %d: %s", r.code, r.stderr)
		}
		l.assertNoPinPath(ids)
		assertNoLeftovers(t, l.pinPath)
	}
	load.enough(t, "load")
	unload.enough(t, "unload")
}

func TestKernelKillPin(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	var args []string
	n := inGuest(100, 30)
	for i := 0; i < n; i++ {
		c := box.Child(fmt.Sprintf("c%d", i))
		if err := c.Mkdir(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Remove() })
		args = append(args, c.Rel)
	}
	l.run("load", "--flush", "walk")
	ids := l.recordIDs()
	pinArgs := l.args(append([]string{"pin"}, args...)...)
	pinTime := timed(t, pinArgs...)
	pin := tally{max: pinTime}
	for pin.more() {
		l.run("unpin", "--all")
		pin.add(killAfter(t, pin.delay(), pinArgs...))
		l.run("unpin", "--all") // recovery
		if rels, _ := os.ReadDir(filepath.Join(l.pinPath, "cgroups")); len(rels) != 0 {
			t.Fatalf("stat files left after unpin --all: %v", rels)
		}
		if _, err := loader.ReadRecord(l.pinPath); err != nil {
			t.Fatalf("the load is damaged: %v", err)
		}
		assertNoLeftovers(t, l.pinPath)
	}
	l.run("unload")
	l.assertNoPinPath(ids)
	assertNoLeftovers(t, l.pinPath)
	pin.enough(t, fmt.Sprintf("pin of %d cgroups", n))
}

// bigSpec has n leaves below the top.
func bigSpec(n int) string {
	var b strings.Builder
	b.WriteString("children:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: c%d\n", i)
	}
	return b.String()
}

func TestKernelKillHierarchyCreate(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	n := inGuest(500, 100)
	path, _ := l.writeSpec(bigSpec(n))
	before := settings(t, l.h, box)
	l.run("load", "--flush", "walk")
	ids := l.recordIDs()
	createArgs := l.args("hierarchy", "create", "--pin", "-f", path, "--parent", box.Rel)
	createTime := timed(t, createArgs...)
	create := tally{max: createTime}
	for first := true; first || create.more(); first = false {
		if !first { // the timed run made a whole tree: destroy it first
			create.add(killAfter(t, create.delay(), createArgs...))
		}
		// Recovery: destroy (exit 2 "no cgroup of the tree exists" when the kill came first).
		r := runProc(t, l.args("hierarchy", "destroy", "-f", path, "--parent", box.Rel)...)
		if r.code != 0 && !strings.Contains(r.stderr, "no cgroup of the tree exists") {
			t.Fatalf("destroy after a killed create: exit %d: %s", r.code, r.stderr)
		}
		assertNoCgroupsBelow(t, box)
		if rels, _ := os.ReadDir(filepath.Join(l.pinPath, "cgroups")); len(rels) != 0 {
			t.Fatalf("stat files left after destroy: %v", rels)
		}
		if got := settings(t, l.h, box); got != before {
			t.Fatalf("parent settings changed: %s, were %s", got, before)
		}
		assertNoLeftovers(t, l.pinPath)
	}
	l.run("unload")
	l.assertNoPinPath(ids)
	assertNoLeftovers(t, l.pinPath)
	create.enough(t, fmt.Sprintf("hierarchy create --pin of %d cgroups", n+1))
}

func TestKernelKillStress(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	target := box.Child("target")
	if err := target.Mkdir(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.RemoveWait(5 * time.Second) })
	before := settings(t, l.h, target)
	stressArgs := l.args("stress", "--size", "4MiB", "--rounds", "3", target.Rel, target.Rel)
	stressTime := timed(t, stressArgs...)
	stress := tally{max: stressTime}
	for stress.more() {
		stress.add(killAfter(t, stress.delay(), stressArgs...))
		// Recovery: the next stress removes what the killed one left.
		if r := runProc(t, l.args("stress", "--size", "1MiB", target.Rel)...); r.code != 0 {
			t.Fatalf("stress after a killed stress: exit %d: %s", r.code, r.stderr)
		}
		assertNoCgroupsBelow(t, target)
		if pids, _ := target.Procs(); len(pids) > 0 {
			t.Fatalf("processes left in %s: %v", target.Rel, pids)
		}
		if got := settings(t, l.h, target); got != before {
			t.Fatalf("settings of %s changed: %s, were %s", target.Rel, got, before)
		}
		assertNoLeftovers(t, l.pinPath)
	}
	stress.enough(t, "stress")
}

func TestKernelKillCheck(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	path, _ := l.writeSpec(deepSpec)
	before := settings(t, l.h, box)
	checkArgs := l.args("check", "--flush", "walk", "-f", path, "--parent", box.Rel)
	checkTime := timed(t, checkArgs...)
	check := tally{max: checkTime}
	var left []ebpf.ProgramID
	for check.more() {
		check.add(killAfter(t, check.delay(), checkArgs...))
		left = append(left, l.recordIDs()...)
		// Recovery: check again; it removes what the killed one left first.
		if r := runProc(t, checkArgs...); r.code != 0 {
			t.Fatalf("check after a killed check: exit %d: %s%s", r.code, r.stdout, r.stderr)
		}
		assertNoCgroupsBelow(t, box)
		l.assertNoPinPath(left)
		if got := settings(t, l.h, box); got != before {
			t.Fatalf("parent settings changed: %s, were %s", got, before)
		}
		assertNoLeftovers(t, l.pinPath)
	}
	check.enough(t, "check")
}

// TestKernelInterrupt sends SIGINT and SIGTERM to long commands: each stops,
// removes what it made, says so once and exits 130 or 143.
func TestKernelInterrupt(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	path, top := l.writeSpec(bigSpec(3000))
	l.run("load", "--flush", "walk")
	ids := l.recordIDs()
	creating := func() bool { return box.Child(top).Exists() }
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		stderr, code := signalWhen(t, sig, creating, l.args("hierarchy", "create", "--pin", "-f", path, "--parent", box.Rel)...)
		if code == 0 {
			t.Logf("%v came after create finished; destroying", sig)
			l.run("hierarchy", "destroy", "-f", path, "--parent", box.Rel)
			continue
		}
		if code != 128+int(sig) || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "interrupted; what this run created is removed") {
			t.Errorf("create after %v: exit %d, %q; want %d (128 + the signal, as shells report it)", sig, code, stderr, 128+int(sig))
		}
		assertNoCgroupsBelow(t, box)
		if rels, _ := os.ReadDir(filepath.Join(l.pinPath, "cgroups")); len(rels) != 0 {
			t.Errorf("stat files left after %v: %v", sig, rels)
		}
	}
	l.run("unload")
	l.assertNoPinPath(ids)
	assertNoLeftovers(t, l.pinPath)
}
