package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// The tests here are issue 17's "never harm what you did not make": each
// reproduction of the issue, which failed before the fix.

// mkdirs creates cgroups by hand, as a user would (no cgrstat mark), and
// removes them at cleanup, children first.
func mkdirs(t *testing.T, cgs ...cgroup.Cgroup) {
	t.Helper()
	for _, c := range cgs {
		if err := c.Mkdir(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for i := len(cgs) - 1; i >= 0; i-- {
			if cgs[i].Exists() {
				if err := cgs[i].RemoveWait(5 * time.Second); err != nil {
					t.Errorf("removing %s: %v", cgs[i].Rel, err)
				}
			}
		}
	})
}

// TestKernelDestroyOnlyWhatCreateMade is issue 17's first reproduction: a
// tree the user made by hand, matching a spec (and the embedded spec's
// test tree), is left whole with exit 2, its settings unchanged; a tree
// create made is removed; one where the user replaced a leaf by their own
// loses only what create made, and destroy says on stderr what it left.
func TestKernelDestroyOnlyWhatCreateMade(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()

	// The reproduction: qa-manual/x, made by hand, with a limit.
	mine := box.Child("qa-manual")
	mkdirs(t, mine, mine.Child("x"))
	limitFile, limit := "memory.max", "104857600"
	if l.h.Version == 1 {
		limitFile = "memory.limit_in_bytes"
	}
	if err := mine.Write(limitFile, limit); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(specPath, []byte("name: qa-manual\nchildren: [{name: x}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, "removed nothing", l.args("hierarchy", "destroy", "-f", specPath, "--parent", box.Rel)...)
	if !mine.Child("x").Exists() {
		t.Fatal("destroy removed a cgroup it did not create")
	}
	if got, _ := mine.Read(limitFile); strings.TrimSpace(got) != limit {
		t.Errorf("%s of the user's cgroup is %s, was %s", limitFile, got, limit)
	}

	// The embedded spec (test/...) made by hand: a bare destroy leaves it.
	test := box.Child("test")
	var seed []cgroup.Cgroup
	for _, rel := range []string{"", "child1", "child1/child1_1", "child1/child1_2", "child2", "child2/child2_1", "child2/child2_2"} {
		seed = append(seed, test.Child(rel))
	}
	mkdirs(t, seed...)
	wantUsage(t, "not made by cgrstat", l.args("hierarchy", "destroy", "--parent", box.Rel)...)
	for _, c := range seed {
		if !c.Exists() {
			t.Fatalf("a bare hierarchy destroy removed %s, which the user made", c.Rel)
		}
	}

	// A tree create made goes whole.
	path, top := l.writeSpec(deepSpec)
	l.run("hierarchy", "create", "-f", path, "--parent", box.Rel)
	if out := l.run("hierarchy", "destroy", "-f", path, "--parent", box.Rel); !strings.Contains(out, "removed 8 cgroups") {
		t.Errorf("destroy of a tree create made: %q", out)
	}

	// A leaf replaced by the user's own: it and its ancestors stay, the rest goes.
	l.run("hierarchy", "create", "-f", path, "--parent", box.Rel)
	leaf := box.Child(top).Child("a/a1/y")
	if err := leaf.Remove(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // what destroy leaves: runs after the leaf's own cleanup
		for _, rel := range []string{"a/a1", "a", ""} {
			_ = box.Child(top).Child(rel).Remove()
		}
	})
	mkdirs(t, leaf)
	r := cli(t, l.args("hierarchy", "destroy", "-f", path, "--parent", box.Rel)...)
	if r.code != 0 || !strings.Contains(r.stdout, "removed 4 cgroups") ||
		!strings.Contains(r.stderr, "left 4 cgroups of the tree") || !strings.Contains(r.stderr, leaf.Rel) ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("destroy of a tree with the user's leaf: exit %d, %q %q; want 0, 4 removed, 4 left on one line of stderr", r.code, r.stdout, r.stderr)
	}
	for _, rel := range []string{"a/a1/y", "a/a1", "a", ""} {
		if !box.Child(top).Child(rel).Exists() {
			t.Errorf("destroy removed %s, which holds the user's cgroup", rel)
		}
	}
	for _, rel := range []string{"a/a1/x", "a/a1/z", "a/a2", "b"} {
		if box.Child(top).Child(rel).Exists() {
			t.Errorf("destroy left %s, which create made", rel)
		}
	}
}

// TestKernelUnloadRemovesOnlyDirsLoadMade is issue 17's second
// reproduction: unload keeps a pin path directory the user made, removes
// every directory load made (however deep), and a load inside another
// load's pin path is refused before it makes anything.
func TestKernelUnloadRemovesOnlyDirsLoadMade(t *testing.T) {
	l := newLab(t)
	mine := l.pinPath + "-mine"
	testenv.CleanupPinPath(t, mine)
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "load", "--flush", "walk", "--pin-path", mine)
	mustCLI(t, "unload", "--pin-path", mine)
	if entries, err := os.ReadDir(mine); err != nil || len(entries) != 0 {
		t.Errorf("unload of a load in the user's directory: %v, left %v; want the directory kept, empty", err, entries)
	}

	deep := l.pinPath + "-deep"
	testenv.CleanupPinPath(t, deep)
	mustCLI(t, "load", "--flush", "walk", "--pin-path", deep+"/a/b")
	mustCLI(t, "unload", "--pin-path", deep+"/a/b")
	if _, err := os.Lstat(deep); err == nil {
		entries, _ := os.ReadDir(deep)
		t.Errorf("unload left %s (holding %v), which load made", deep, entries)
	}

	l.run("load", "--flush", "walk")
	inner := filepath.Join(l.pinPath, "inner")
	wantUsage(t, "lies inside the load at "+l.pinPath, "load", "--flush", "walk", "--pin-path", inner)
	if _, err := os.Lstat(inner); err == nil {
		t.Errorf("a refused nested load made %s", inner)
	}
	l.run("unload") // assertClean: nothing left at the pin path
}

// TestKernelLockFilesOnlyForLoads is issue 17's sixth reproduction: a lock
// file in /run/cgrstat exists while its pin path holds a load and goes with
// it; commands on pin paths that hold none (refused ones included) leave
// none.
func TestKernelLockFilesOnlyForLoads(t *testing.T) {
	l := newLab(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	notALoadDir := filepath.Join(t.TempDir(), "v")
	notALoad(t, notALoadDir, false)
	for _, c := range [][]string{
		{"status", "--pin-path", l.pinPath}, {"read", "/", "--pin-path", l.pinPath}, {"unload", "--pin-path", l.pinPath},
		{"load", "--pin-path", file}, {"load", "--pin-path", l.pinPath + ".dotted"}, {"unpin", "--all", "--pin-path", notALoadDir},
	} {
		r := cli(t, c...)
		pinPath := c[len(c)-1]
		if _, err := os.Lstat(readout.LockFile(pinPath)); err == nil {
			os.Remove(readout.LockFile(pinPath))
			t.Errorf("cgrstat %s (exit %d) left its lock file %s", strings.Join(c, " "), r.code, readout.LockFile(pinPath))
		}
		if r.code == 0 && c[0] == "load" {
			cli(t, "unload", "--pin-path", pinPath)
		}
	}
	l.run("load", "--flush", "walk")
	if _, err := os.Lstat(readout.LockFile(l.pinPath)); err != nil {
		t.Errorf("no lock file while %s holds a load: %v", l.pinPath, err)
	}
	l.run("status")
	if _, err := os.Lstat(readout.LockFile(l.pinPath)); err != nil {
		t.Errorf("status removed the lock file of a load: %v", err)
	}
	l.run("unload")
	if _, err := os.Lstat(readout.LockFile(l.pinPath)); err == nil {
		t.Errorf("unload left the lock file %s", readout.LockFile(l.pinPath))
	}
}

// get fetches serve's /metrics: status and body.
func get(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// TestKernelUnloadUnderReaders is issue 17's fourth reproduction: unload
// while a serve and a watch that did not load read the same pin path
// completes (exit 0, every program freed); serve then answers 503 with one
// line and logs it once, watch says it once, and both serve the next load
// at that pin path by themselves. A serve that loaded leaves, on exit, a
// load someone else made after unloading its own.
func TestKernelUnloadUnderReaders(t *testing.T) {
	l := newLab(t)
	l.run("load", "--flush", "walk")
	serve := startCLI(t, l.args("serve", "--web.listen-address", freeAddr(t))...)
	addr := serve.serveAddr(t)
	watch := startCLI(t, l.args("watch", "--interval", "100ms")...)
	if code, body := get(t, addr); code != http.StatusOK {
		t.Fatalf("scrape before unload: %d %s", code, body)
	}
	time.Sleep(300 * time.Millisecond) // a few frames of watch
	ids := l.recordIDs()
	if r := cli(t, l.args("unload")...); r.code != 0 {
		t.Fatalf("unload under serve and watch: exit %d: %s", r.code, r.stderr)
	}
	assertFreed(t, ids)
	for i := 0; i < 3; i++ {
		code, body := get(t, addr)
		if code != http.StatusServiceUnavailable || strings.Count(body, "\n") != 1 || !strings.Contains(body, "not loaded at "+l.pinPath) {
			t.Fatalf("scrape without a load: %d %q; want 503 and one line naming the pin path", code, body)
		}
	}
	if n := strings.Count(serve.stderr.String(), "no load to read"); n != 1 {
		t.Errorf("serve logged the missing load %d times, want once:\n%s", n, serve.stderr)
	}
	waitFor(t, "watch to say the load is gone", func() bool { return strings.Contains(watch.stderr.String(), "not loaded at "+l.pinPath) })

	l.run("load", "--flush", "walk")
	if code, body := get(t, addr); code != http.StatusOK || !strings.Contains(body, "cgrstat_memcg_reclaims_total") {
		t.Fatalf("scrape after a new load: %d %.300s", code, body)
	}
	if n := strings.Count(serve.stderr.String(), "serving it"); n != 1 {
		t.Errorf("serve logged the new load %d times, want once:\n%s", n, serve.stderr)
	}
	waitFor(t, "watch to read the new load", func() bool { return strings.Contains(watch.stderr.String(), "loaded again at "+l.pinPath) })
	if n := strings.Count(watch.stderr.String(), "not loaded at"); n != 1 {
		t.Errorf("watch said the load was gone %d times, want once:\n%s", n, watch.stderr)
	}
	for _, p := range []*cliProc{serve, watch} {
		if code := p.stop(t); code != 0 {
			t.Errorf("%v: exit %d:\n%s", p.cmd.Args[1:3], code, p.stderr)
		}
	}
	if _, err := loader.ReadRecord(l.pinPath); err != nil {
		t.Fatalf("serve and watch, which did not load, removed the load: %v", err)
	}
	l.run("unload")

	// serve loads, someone unloads and loads again: serve's exit leaves that load.
	serve = startCLI(t, l.args("serve", "--web.listen-address", freeAddr(t))...)
	serve.serveAddr(t)
	l.run("unload")
	l.run("load", "--flush", "walk")
	if code := serve.stop(t); code != 0 {
		t.Errorf("serve: exit %d:\n%s", code, serve.stderr)
	}
	if _, err := loader.ReadRecord(l.pinPath); err != nil {
		t.Errorf("serve unloaded a load it did not make: %v", err)
	}
	l.run("unload")
}
