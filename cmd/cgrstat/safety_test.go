package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// notALoad makes dir a directory that is not a cgrstat load but looks like
// one by name: cgroups/important/file off bpffs, a pinned map at
// cgroups/important/vmscan.stat and maps/x on bpffs.
func notALoad(t *testing.T, dir string, onBPFFS bool) (witnesses []string) {
	t.Helper()
	if !onBPFFS {
		for _, f := range []string{"cgroups/important/file", "cgroups/important/vmscan.stat", "maps/info"} {
			p := filepath.Join(dir, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("data\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			witnesses = append(witnesses, p)
		}
		return witnesses
	}
	for _, f := range []string{"cgroups/important/vmscan.stat", "maps/info"} {
		// One map per pin: pinning a map again moves its pin.
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		p := filepath.Join(dir, f)
		// Mode 0: bpffs refuses a dotted name in a directory with permission bits.
		if err := os.MkdirAll(filepath.Dir(p), 0); err != nil {
			t.Fatal(err)
		}
		if err := m.Pin(p); err != nil {
			t.Fatal(err)
		}
		witnesses = append(witnesses, p)
	}
	return witnesses
}

// TestKernelNotALoadIsLeftAlone is issue 11's first reproduction and its
// safety test: unpin --all, unpin, unload, pin, read, status, load and
// hierarchy destroy, pointed at a directory that is not a load, delete
// nothing and exit 2 with one line that suggests no rm.
func TestKernelNotALoadIsLeftAlone(t *testing.T) {
	l := newLab(t)
	for _, onBPFFS := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "v")
		if onBPFFS {
			dir = l.pinPath + "-notaload"
			t.Cleanup(func() { os.RemoveAll(dir) }) // what this test made, on its own unique path
		}
		witnesses := notALoad(t, dir, onBPFFS)
		t.Cleanup(func() { os.Remove(readout.LockFile(dir)) })
		for _, args := range [][]string{
			{"unpin", "--all"}, {"unpin", "important"}, {"unload"}, {"pin", "/"}, {"read", "/"}, {"status"}, {"load"},
			{"hierarchy", "destroy", "--parent", "/"},
		} {
			r := cli(t, append(args, "--pin-path", dir)...)
			if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || strings.Contains(r.stderr, "rm ") {
				t.Errorf("%v on a directory that is not a load (bpffs %v): exit %d, %q; want 2 and one line without rm", args, onBPFFS, r.code, r.stderr)
			}
			for _, w := range witnesses {
				if _, err := os.Lstat(w); err != nil {
					t.Fatalf("%v removed %s: %v", args, w, err)
				}
			}
		}
	}
}

func TestKernelBadPinPaths(t *testing.T) {
	l := newLab(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, l.pinPath + ".dotted"} {
		t.Cleanup(func() { os.Remove(readout.LockFile(p)) })
	}
	wantUsage(t, "is not a directory", "load", "--pin-path", file)
	wantUsage(t, "is not a directory", "unload", "--pin-path", file)
	wantUsage(t, "bpffs refuses names with a dot", "load", "--pin-path", l.pinPath+".dotted")
	if _, err := os.Lstat(l.pinPath + ".dotted"); err == nil {
		t.Errorf("load made %s", l.pinPath+".dotted")
	}
	// "not loaded" keeps the --pin-path given.
	wantUsage(t, "run: cgrstat --pin-path "+l.pinPath+" load", "read", "/", "--pin-path", l.pinPath)
}

// TestKernelConcurrentPinUnload races loops of pin, unpin and read against
// unload and load (issue 11's third reproduction): afterwards the pin path
// holds either a whole load or nothing, and unload frees every program.
func TestKernelConcurrentPinUnload(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	var names []string
	for i := 0; i < 4; i++ {
		c := box.Child(fmt.Sprintf("c%d", i))
		if err := c.Mkdir(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Remove() })
		names = append(names, c.Rel)
	}
	rounds := inGuest(10, 2) // see kills
	var ids []ebpf.ProgramID
	for round := 0; round < rounds; round++ {
		l.run("load", "--flush", "walk")
		ids = append(ids, l.recordIDs()...)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					default:
					}
					args := [][]string{{"pin", name}, {"read", name}, {"unpin", name}}[(i+j)%3]
					r := runProc(t, l.args(args...)...)
					// Exit 2: not loaded (after the unload), or no stat file to unpin.
					if r.code == 1 {
						t.Errorf("%v racing unload: exit 1: %s", args, r.stderr)
					}
				}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		if r := runProc(t, l.args("unload")...); r.code != 0 {
			t.Errorf("unload racing pin: exit %d: %s", r.code, r.stderr)
		}
		if round%2 == 0 { // and a load racing them too
			if r := runProc(t, l.args("load", "--flush", "walk")...); r.code != 0 {
				t.Errorf("load racing pin: exit %d: %s", r.code, r.stderr)
			}
			ids = append(ids, l.recordIDs()...)
		}
		close(stop)
		wg.Wait()
		// A whole load, or nothing.
		if _, err := loader.ReadRecord(l.pinPath); err == nil {
			p, err := readout.Open(l.pinPath)
			if err != nil {
				t.Fatalf("round %d: the load is not whole: %v", round, err)
			}
			p.Close()
			l.run("unload")
		}
		l.assertNoPinPath(ids)
	}
}

// TestKernelStressNeverChangesTarget is issue 11's second reproduction: two
// stress runs on one cgroup at once, and one stress given the same cgroup
// twice, leave every setting of the cgroup as it was.
func TestKernelStressNeverChangesTarget(t *testing.T) {
	l := newLab(t)
	box := l.sandbox().Child("target") // a leaf: v2 lets processes only into leaves
	if err := box.Mkdir(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = box.RemoveWait(5 * time.Second) })
	before := settings(t, l.h, box)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rounds := fmt.Sprint(inGuest(20, 5)) // see kills
			if r := runProc(t, l.args("stress", "--size", "4MiB", "--rounds", rounds, box.Rel, box.Rel)...); r.code != 0 {
				t.Errorf("stress: exit %d: %s", r.code, r.stderr)
			}
		}()
	}
	wg.Wait()
	if got := settings(t, l.h, box); got != before {
		t.Errorf("stress changed %s: %s, was %s", box.Rel, got, before)
	}
	assertNoCgroupsBelow(t, box)
}

// TestKernelDestroyPartialTree: a leaf removed outside cgrstat does not stop
// destroy, and create over a partial tree says how to recover.
func TestKernelDestroyPartialTree(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	path, top := l.writeSpec(deepSpec)
	l.run("hierarchy", "create", "-f", path, "--parent", box.Rel)
	if err := box.Child(top).Child("b").Remove(); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, "hierarchy destroy -f "+path+" --parent "+box.Rel, "hierarchy", "create", "-f", path, "--parent", box.Rel, "--pin-path", l.pinPath)
	if out := l.run("hierarchy", "destroy", "-f", path, "--parent", box.Rel); !strings.Contains(out, "removed 7 cgroups") {
		t.Errorf("destroy of a partial tree: %q", out)
	}
	assertNoCgroupsBelow(t, box)
	wantUsage(t, "no cgroup of the tree exists", "hierarchy", "destroy", "-f", path, "--parent", box.Rel, "--pin-path", l.pinPath)
	// One cgroup: no "1 cgroups".
	one, _ := l.writeSpec("")
	l.run("hierarchy", "create", "-f", one, "--parent", box.Rel)
	if out := l.run("hierarchy", "destroy", "-f", one, "--parent", box.Rel); !strings.Contains(out, "removed 1 cgroup under") {
		t.Errorf("destroy of one cgroup: %q", out)
	}
}

// TestKernelUnpinAllOrNothing: unpin A B, where B has no stat file, removes
// neither.
func TestKernelUnpinAllOrNothing(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	a := box.Child("a")
	if err := a.Mkdir(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Remove() })
	l.run("load", "--flush", "walk")
	t.Cleanup(func() { cli(t, "unload", "--pin-path", l.pinPath) })
	l.run("pin", a.Rel)
	wantUsage(t, "has no stat file; nothing unpinned", "unpin", a.Rel, box.Rel, "--pin-path", l.pinPath)
	if _, err := os.Lstat(filepath.Join(l.pinPath, "cgroups", a.Rel, "vmscan.stat")); err != nil {
		t.Errorf("unpin removed A although B failed: %v", err)
	}
	// read and status are not interrupted-and-cleaned commands.
	if r := cli(t, "read", a.Rel, "--pin-path", l.pinPath); r.code != 0 {
		t.Errorf("read: %d %s", r.code, r.stderr)
	}
}

// TestKernelReadByTopName is the README's "read --all --json test": the
// tree's top named as a relative path works on v1, where trees are built
// below the caller's own cgroup, as on v2.
func TestKernelReadByTopName(t *testing.T) {
	l := newLab(t)
	path, top := l.writeSpec(deepSpec)
	l.run("load", "--flush", "walk")
	t.Cleanup(func() { cli(t, "unload", "--pin-path", l.pinPath) })
	l.run("hierarchy", "create", "-f", path)
	t.Cleanup(func() { cli(t, "hierarchy", "destroy", "-f", path, "--pin-path", l.pinPath) })
	out := l.run("read", "--all", "--json", top)
	if got := strings.Count(out, `"path"`); got != 8 {
		t.Errorf("read --all --json %s printed %d cgroups, want 8:\n%s", top, got, out)
	}
}

// TestKernelNamesInErrors: a name with a newline stays on one line, and a
// long one is shortened, not echoed whole (twice).
func TestKernelNamesInErrors(t *testing.T) {
	l := newLab(t)
	l.run("load", "--flush", "walk")
	t.Cleanup(func() { cli(t, "unload", "--pin-path", l.pinPath) })
	wantUsage(t, `a\x0ab`, "pin", "a\nb", "--pin-path", l.pinPath)
	long := strings.Repeat("b", 5000)
	for _, args := range [][]string{{"pin", long}, {"unpin", long}, {"read", long}} {
		r := cli(t, append(args, "--pin-path", l.pinPath)...)
		if r.code != 2 || len(r.stderr) > 300 || !strings.Contains(r.stderr, "(5000 bytes)") {
			t.Errorf("%s of a 5000-byte name: exit %d, %d bytes on stderr: %.300q", args[0], r.code, len(r.stderr), r.stderr)
		}
	}
}

// TestKernelStressChildDeath: a stress child killed from outside is reported
// with its signal and why, not as "signal: killed"; its scratch cgroup goes.
func TestKernelStressChildDeath(t *testing.T) {
	l := newLab(t)
	target := l.sandbox().Child("target")
	if err := target.Mkdir(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.RemoveWait(5 * time.Second) })
	var errOut strings.Builder
	c := proc(l.args("stress", "--size", "8MiB", "--rounds", "1000", target.Rel)...)
	c.Stderr = &errOut
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// The child: in the target on v2, in its scratch cgroup on v1.
	deadline := time.Now().Add(30 * time.Second)
	for killed := false; !killed; {
		if time.Now().After(deadline) {
			_ = c.Process.Kill()
			t.Fatal("no stress child appeared")
		}
		_ = cgroup.Walk(target, func(cg cgroup.Cgroup) error {
			pids, _ := cg.Procs()
			for _, pid := range pids {
				killed = killed || syscall.Kill(pid, syscall.SIGKILL) == nil
			}
			return nil
		})
		time.Sleep(10 * time.Millisecond)
	}
	err := c.Wait()
	if err == nil || !strings.Contains(errOut.String(), "the child was killed by SIGKILL (not by the OOM killer") ||
		strings.Count(errOut.String(), "\n") != 1 {
		t.Errorf("stress whose child was killed: %v, %q", err, errOut.String())
	}
	assertNoCgroupsBelow(t, target)
}
