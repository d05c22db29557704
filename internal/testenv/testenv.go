// Package testenv decides whether a test can run on this machine's kernel.
//
// Tests that need root, BPF or a cgroup hierarchy call these helpers. On an
// ordinary machine a missing prerequisite skips the test with the reason. In
// the kernel lab, where CGRSTAT_REQUIRE_KERNEL=1 is set, the same missing
// prerequisite fails the test: a guest that cannot run them is broken, and a
// skip there would hide it.
package testenv

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// RequireKernelEnv is the variable the kernel lab sets in its guests.
const RequireKernelEnv = "CGRSTAT_REQUIRE_KERNEL"

// Required reports whether missing prerequisites are failures.
func Required() bool { return os.Getenv(RequireKernelEnv) == "1" }

// Skip skips the test with reason, or fails it in the kernel lab.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("prerequisite missing in the kernel lab: %s", reason)
	}
	t.Skip(reason)
}

// Root skips (or fails, see Skip) when the test is not running as root or in
// short mode.
func Root(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode: this test needs a real kernel (make hosttest or make vmtest runs it)")
	}
	if os.Geteuid() != 0 {
		Skip(t, "needs root to load BPF programs and create cgroups")
	}
}

// Hierarchy is the memory cgroup hierarchy of this machine; the test skips
// (see Skip) without root or without one.
func Hierarchy(t testing.TB) *cgroup.Hierarchy {
	t.Helper()
	Root(t)
	h, err := cgroup.Detect("")
	if err != nil {
		Skip(t, "no memory cgroup hierarchy: %v", err)
	}
	return h
}

// Name is t's name made safe for a pin path or a cgroup name, unique to
// this process.
func Name(t testing.TB) string {
	return fmt.Sprintf("cgrstat-test-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", ".", "-").Replace(t.Name()))
}

// PinPath is a pin path of the test's own. At cleanup a load left there is
// unloaded, and whatever else the test made there is removed.
func PinPath(t testing.TB) string {
	t.Helper()
	pinPath := "/sys/fs/bpf/" + Name(t)
	CleanupPinPath(t, pinPath)
	return pinPath
}

// CleanupPinPath makes pinPath, which must not exist yet, the test's own:
// at cleanup a load left there is unloaded, and the path is removed.
func CleanupPinPath(t testing.TB, pinPath string) {
	t.Helper()
	if _, err := os.Stat(pinPath); err == nil {
		t.Fatalf("pin path %s exists already", pinPath)
	}
	t.Cleanup(func() {
		if _, err := loader.ReadRecord(pinPath); err == nil {
			if _, err := loader.Unload(pinPath); err != nil {
				t.Errorf("unloading %s: %v", pinPath, err)
			}
		}
		if err := os.RemoveAll(pinPath); err != nil { // the test's own path
			t.Errorf("removing %s: %v", pinPath, err)
		}
		// The lock file of the test's own pin path: no cgrstat waits on it now.
		os.Remove(readout.LockFile(pinPath))
	})
}

// LoadOptions load at a pin path of the test's own (see PinPath).
func LoadOptions(t testing.TB, h *cgroup.Hierarchy, flush loader.Mode, maxCgroups uint32) loader.Options {
	t.Helper()
	return loader.Options{PinPath: PinPath(t), Flush: flush, MaxCgroups: maxCgroups,
		CgroupVersion: h.Version, MemcgV1Hierarchy: h.V1ID, CgroupRoot: h.Mount}
}

// Load loads cgrstat at a pin path of the test's own and opens it; both
// go at cleanup.
func Load(t testing.TB, flush loader.Mode, maxCgroups uint32) (*readout.Handle, *cgroup.Hierarchy) {
	t.Helper()
	h := Hierarchy(t)
	opts := LoadOptions(t, h, flush, maxCgroups)
	rec, err := loader.Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Logf("flush mode %s", rec.Flush)
	p, err := readout.Open(opts.PinPath)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(p.Close)
	return p, h
}

// Cgroups creates a cgroup of the test's own below the default parent, and
// rels below it (in order, parents first); all are removed at cleanup.
func Cgroups(t testing.TB, h *cgroup.Hierarchy, rels ...string) cgroup.Cgroup {
	t.Helper()
	top := h.DefaultParent().Child(Name(t))
	var made []cgroup.Cgroup
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if err := made[i].Remove(); err != nil {
				t.Errorf("removing test cgroup: %v", err)
			}
		}
	})
	for _, c := range append([]cgroup.Cgroup{top}, children(top, rels)...) {
		if err := c.Mkdir(); err != nil {
			t.Fatal(err)
		}
		made = append(made, c)
	}
	return top
}

func children(top cgroup.Cgroup, rels []string) []cgroup.Cgroup {
	var out []cgroup.Cgroup
	for _, r := range rels {
		out = append(out, top.Child(r))
	}
	return out
}

// Map opens the map name of the load h for a test that looks inside it
// (readout keeps its own handles unexported); it closes at cleanup.
func Map(t testing.TB, h *readout.Handle, name string) *ebpf.Map {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(h.Dir.Map(name), nil)
	if err != nil {
		t.Fatalf("opening pinned map %s: %v", name, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Program opens the program name of the load h (see Map).
func Program(t testing.TB, h *readout.Handle, name string) *ebpf.Program {
	t.Helper()
	p, err := ebpf.LoadPinnedProgram(h.Dir.Program(name), nil)
	if err != nil {
		t.Fatalf("opening pinned program %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Loads shared by the tests of one test binary (see Shared), by flush mode
// and map size, unloaded by Main once the tests are done.
var shared struct {
	sync.Mutex
	main  bool
	loads map[string]*sharedLoad
}

type sharedLoad struct {
	path string
	p    *readout.Handle
	err  error
}

// Main runs the package's tests (call it from TestMain, as
// os.Exit(testenv.Main(m))) and then unloads the loads they shared.
func Main(m *testing.M) int {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	defer shared.Unlock()
	for _, s := range shared.loads {
		if s.p != nil {
			s.p.Close() // Unload waits until no one holds the programs
		}
		if _, err := loader.ReadRecord(s.path); err == nil {
			if _, err := loader.Unload(s.path); err != nil {
				fmt.Fprintf(os.Stderr, "unloading the shared load at %s: %v\n", s.path, err)
				code = max(code, 1)
			}
		}
		os.RemoveAll(s.path) // this process's own pin path
		os.Remove(readout.LockFile(s.path))
	}
	return code
}

// Shared is a load at a pin path of this test binary's own, made by the
// first test that asks for it and shared by every test of the binary that
// asks for the same flush mode and map size; Main unloads it. Each test
// starts with no stat files pinned there, and the ones it pins go when it
// ends. Loading costs 4-8 s, most of it verification, in the kernel lab's
// emulated 7.3 guest: tests share a load unless what they test is the load itself (its
// map filling up, its first totals, load and unload). Sharing tests build
// their own cgroups, read only those, and count what the load lost from
// what it had lost when they began.
func Shared(t testing.TB, flush loader.Mode, maxCgroups uint32) (*readout.Handle, *cgroup.Hierarchy) {
	t.Helper()
	h := Hierarchy(t)
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatal("testenv.Shared needs the package's TestMain to run its tests through testenv.Main, which unloads")
	}
	key := fmt.Sprintf("%s-%d", flush, maxCgroups)
	s := shared.loads[key]
	if s == nil {
		s = &sharedLoad{path: fmt.Sprintf("/sys/fs/bpf/cgrstat-test-%d-shared-%s", os.Getpid(), key)}
		if shared.loads == nil {
			shared.loads = map[string]*sharedLoad{}
		}
		shared.loads[key] = s
		s.p, s.err = loadShared(s.path, h, flush, maxCgroups)
		if s.err == nil {
			t.Logf("shared load at %s: flush mode %s", s.path, s.p.Record.Flush)
		}
	}
	if s.err != nil {
		t.Fatalf("the shared load (%s): %v", key, s.err)
	}
	unpinAll := func() error { return s.p.Dir.RemoveStatFiles() }
	if err := unpinAll(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unpinAll(); err != nil {
			t.Errorf("removing the stat files of the shared load: %v", err)
		}
	})
	return s.p, h
}

func loadShared(path string, h *cgroup.Hierarchy, flush loader.Mode, maxCgroups uint32) (*readout.Handle, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("pin path %s exists already", path)
	}
	opts := loader.Options{PinPath: path, Flush: flush, MaxCgroups: maxCgroups,
		CgroupVersion: h.Version, MemcgV1Hierarchy: h.V1ID, CgroupRoot: h.Mount}
	if _, err := loader.Load(opts); err != nil {
		return nil, err
	}
	return readout.Open(path)
}
