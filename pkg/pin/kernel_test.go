package pin_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/cgroupiter"
	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

func mustID(t *testing.T, c cgroup.Cgroup) uint64 {
	t.Helper()
	id, err := cgroup.ID(c)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// readIter reads an iterator link once, as cat would.
func readIter(t *testing.T, open func() (io.ReadCloser, error)) string {
	t.Helper()
	r, err := open()
	if err != nil {
		t.Fatalf("opening the iterator: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading the iterator: %v", err)
	}
	return string(b)
}

// parseOne checks that out is exactly one cgroup's stat (the seed's line
// first, then the lines that follow it), for cgroup id.
func parseOne(t *testing.T, out string, id uint64) reclaim.Stat {
	t.Helper()
	if strings.Count(out, "cg_id: ") != 1 || !strings.HasPrefix(out, "cg_id: ") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("iterator printed %q, want exactly one cgroup's stat", out)
	}
	st, err := reclaim.ParseStat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != id {
		t.Errorf("iterator printed cgroup id %d, want %d (%q)", st.ID, id, out)
	}
	return st
}

func TestKernelCgroupIterErrors(t *testing.T) {
	p, h := testenv.Shared(t, loader.Auto, 512)
	c := testenv.Cgroups(t, h)
	dir, err := os.Open(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	regular, err := os.CreateTemp(t.TempDir(), "not-a-cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()

	tests := []struct {
		name  string
		fd    int
		order cgroupiter.Order
		nilP  bool
		is    error
		msg   string
	}{
		{name: "nil program", fd: int(dir.Fd()), order: cgroupiter.SelfOnly, nilP: true, is: cgroupiter.ErrNotIterator},
		{name: "fd -1", fd: -1, order: cgroupiter.SelfOnly, is: unix.EBADF},
		// The kernel reads cgroup_fd 0 as "no fd" and walks the root of
		// the default hierarchy: stdin must not stand for that.
		{name: "fd 0", fd: 0, order: cgroupiter.SelfOnly, is: unix.EBADF},
		{name: "regular file", fd: int(regular.Fd()), order: cgroupiter.SelfOnly, is: unix.EBADF, msg: "not a cgroup directory"},
		{name: "closed fd", fd: 1 << 20, order: cgroupiter.SelfOnly, is: unix.EBADF},
		{name: "order 99", fd: int(dir.Fd()), order: 99, is: unix.EINVAL, msg: "order or program not valid"},
		{name: "order 0", fd: int(dir.Fd()), order: 0, is: unix.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := testenv.Program(t, p, bpf.CgrstatProgDump)
			if tt.nilP {
				prog = nil
			}
			it, err := cgroupiter.New(prog, tt.fd, tt.order)
			if err == nil {
				it.Close()
				t.Fatal("CgroupIter succeeded")
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("CgroupIter: %v, want errors.Is %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("CgroupIter: %q lacks %q", err, tt.msg)
			}
		})
	}
}

func TestKernelCgroupIterSelfOnly(t *testing.T) {
	p, h := testenv.Shared(t, loader.Auto, 512)
	c := testenv.Cgroups(t, h, "child")
	for _, c := range []cgroup.Cgroup{c, c.Child("child"), h.DefaultParent()} {
		dir, err := os.Open(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		it, err := cgroupiter.New(testenv.Program(t, p, bpf.CgrstatProgDump), int(dir.Fd()), cgroupiter.SelfOnly)
		dir.Close() // the link holds its own reference
		if err != nil {
			t.Fatalf("CgroupIter(%s): %v", c.Rel, err)
		}
		// Each open is a new session with its own final line.
		for i := 0; i < 2; i++ {
			parseOne(t, readIter(t, it.Open), mustID(t, c))
		}
		it.Close()
	}
}

// TestKernelOpenPrintsTheCgroup checks that the order a stat file uses for the
// load's flush mode ends on the cgroup itself, also when it has
// descendants (walk mode visits them first).
func TestKernelOpenPrintsTheCgroup(t *testing.T) {
	p, h := testenv.Shared(t, loader.Auto, 512)
	top := testenv.Cgroups(t, h, "a", "a/a1", "a/a2", "b")
	dump := testenv.Program(t, p, bpf.CgrstatProgDump)
	if got := readout.OrderFor(p.Record.Flush); p.Record.Flush == loader.Walk && got != cgroupiter.DescendantsPost ||
		p.Record.Flush != loader.Walk && got != cgroupiter.SelfOnly {
		t.Errorf("OrderFor(%s) = %d", p.Record.Flush, got)
	}
	for _, c := range []cgroup.Cgroup{top, top.Child("a"), top.Child("a/a2"), top.Child("b")} {
		it, err := cgroupiter.Open(dump, c, readout.OrderFor(p.Record.Flush))
		if err != nil {
			t.Fatalf("Open(%s): %v", c.Rel, err)
		}
		parseOne(t, readIter(t, it.Open), mustID(t, c))
		it.Close()
	}
	missing := top.Child("missing")
	if it, err := cgroupiter.Open(dump, missing, readout.OrderFor(p.Record.Flush)); err == nil {
		it.Close()
		t.Error("Open of a missing cgroup succeeded")
	} else if !strings.Contains(err.Error(), missing.Rel) {
		t.Errorf("Open of a missing cgroup: %q does not name it", err)
	}
}

func TestKernelPinUnpinList(t *testing.T) {
	p, h := testenv.Shared(t, loader.Auto, 512)
	// A dotted cgroup name needs the mode-0 directories of pin.go.
	top := testenv.Cgroups(t, h, "a", "a/b.c", "z")
	cgs := []cgroup.Cgroup{top, top.Child("a"), top.Child("a/b.c"), top.Child("z")}

	if rels, err := pin.List(p.Path); err != nil || len(rels) != 0 {
		t.Fatalf("List before pinning = %v, %v; want nothing", rels, err)
	}
	// Pin children before parents: List sorts anyway.
	for i := len(cgs) - 1; i >= 0; i-- {
		c := cgs[i]
		path, err := pin.Pin(p, c)
		if err != nil {
			t.Fatalf("Pin(%s): %v", c.Rel, err)
		}
		if want := pin.StatFile(p.Path, c.Rel); path != want {
			t.Errorf("Pin(%s) = %s, want %s", c.Rel, path, want)
		}
	}
	// Pinning again replaces the file.
	if _, err := pin.Pin(p, top); err != nil {
		t.Fatalf("Pin again: %v", err)
	}
	for _, c := range cgs {
		path := pin.StatFile(p.Path, c.Rel)
		for i := 0; i < 2; i++ { // each read is a new session
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading %s: %v", path, err)
			}
			parseOne(t, string(b), mustID(t, c))
		}
	}
	// Every directory below cgroups/ is mode 0 (see dirMode in pin.go).
	statRoot := p.Dir.StatFiles()
	err := filepath.WalkDir(statRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil && fi.Mode().Perm() != 0 {
			t.Errorf("%s has mode %v, want 0", path, fi.Mode().Perm())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	want := []string{top.Rel, top.Rel + "/a", top.Rel + "/a/b.c", top.Rel + "/z"}
	rels, err := pin.List(p.Path)
	if err != nil || !reflect.DeepEqual(rels, want) {
		t.Fatalf("List = %v, %v; want %v", rels, err, want)
	}
	if !sort.StringsAreSorted(rels) {
		t.Errorf("List %v is not sorted", rels)
	}

	// Unpin a leaf: its directory goes, its parent's stays.
	unpin := func(rel string) {
		t.Helper()
		if err := pin.Unpin(p.Path, rel); err != nil {
			t.Fatalf("Unpin(%s): %v", rel, err)
		}
		if _, err := os.Stat(pin.StatFile(p.Path, rel)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat file of %s after Unpin: %v", rel, err)
		}
	}
	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Dir(pin.StatFile(p.Path, rel)))
		return err == nil
	}
	unpin(top.Rel + "/a/b.c")
	if exists(top.Rel+"/a/b.c") || !exists(top.Rel+"/a") {
		t.Errorf("after unpinning a/b.c: its directory exists %v, a's %v; want false, true", exists(top.Rel+"/a/b.c"), exists(top.Rel+"/a"))
	}
	// Unpin a parent whose child still has a stat file: the directory stays.
	unpin(top.Rel)
	if !exists(top.Rel) {
		t.Error("unpinning the top removed the directory that holds its children's stat files")
	}
	if rels, err := pin.List(p.Path); err != nil || !reflect.DeepEqual(rels, []string{top.Rel + "/a", top.Rel + "/z"}) {
		t.Errorf("List = %v, %v", rels, err)
	}
	unpin(top.Rel + "/a")
	unpin(top.Rel + "/z")
	// Everything up to cgroups/ is pruned, the default parent's directories too.
	entries, err := os.ReadDir(statRoot)
	if err != nil || len(entries) != 0 {
		t.Errorf("%s holds %v (%v) after unpinning everything, want it empty", statRoot, entries, err)
	}
	if rels, err := pin.List(p.Path); err != nil || len(rels) != 0 {
		t.Errorf("List after unpinning everything = %v, %v", rels, err)
	}
	if err := pin.Unpin(p.Path, top.Rel); !errors.Is(err, pin.ErrNoStatFile) {
		t.Errorf("Unpin of a cgroup without a stat file: %v", err)
	}
}

func TestKernelUnpinAll(t *testing.T) {
	p, h := testenv.Shared(t, loader.Auto, 512)
	top := testenv.Cgroups(t, h, "a")
	for _, c := range []cgroup.Cgroup{top, top.Child("a")} {
		if _, err := pin.Pin(p, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := pin.UnpinAll(p.Path); err != nil {
		t.Fatal(err)
	}
	if rels, err := pin.List(p.Path); err != nil || len(rels) != 0 {
		t.Errorf("List after UnpinAll = %v, %v", rels, err)
	}
	// The load itself is untouched.
	if _, err := loader.ReadRecord(p.Path); err != nil {
		t.Errorf("ReadRecord after UnpinAll: %v", err)
	}
}

func TestStatFile(t *testing.T) {
	tests := []struct{ rel, want string }{
		{"/", "/p/cgroups/vmscan.stat"},
		{"/test/a", "/p/cgroups/test/a/vmscan.stat"},
		{"test/a", "/p/cgroups/test/a/vmscan.stat"},
		{"../../etc", "/p/cgroups/etc/vmscan.stat"},
	}
	for _, tt := range tests {
		if got := pin.StatFile("/p", tt.rel); got != tt.want {
			t.Errorf("StatFile(/p, %q) = %q, want %q", tt.rel, got, tt.want)
		}
	}
}

// TestKernelStaleStatFile is issue 17's `cat` of a stale stat file, which
// printed nothing and so read as success: the stat file of a removed
// cgroup prints one line that says so, in every flush mode, and
// reclaim.ParseStat returns ErrStale for it. A live cgroup's file still
// ends after its stat: a second read() of one open file prints nothing.
func TestKernelStaleStatFile(t *testing.T) {
	p, h := testenv.Shared(t, loader.Auto, 512)
	top := testenv.Cgroups(t, h, "live")
	gone := top.Child("gone")
	if err := gone.Mkdir(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []cgroup.Cgroup{top.Child("live"), gone} {
		if _, err := pin.Pin(p, c); err != nil {
			t.Fatal(err)
		}
	}
	live := pin.StatFile(p.Path, top.Child("live").Rel)
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	n, err := f.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	parseOne(t, string(buf[:n]), mustID(t, top.Child("live")))
	if n, err := f.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("second read() of a live stat file: %d bytes %q, %v; want EOF", n, buf[:n], err)
	}
	f.Close()

	if err := gone.Remove(); err != nil {
		t.Fatal(err)
	}
	stale := pin.StatFile(p.Path, gone.Rel)
	b, err := os.ReadFile(stale)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "stale: the cgroup of this stat file was removed (cgrstat unpin it)\n" {
		t.Errorf("the stat file of a removed cgroup printed %q, want one line saying it is stale", got)
	}
	if _, err := reclaim.ReadFile(stale); !errors.Is(err, reclaim.ErrStale) {
		t.Errorf("reclaim.ReadFile of a stale stat file: %v, want ErrStale", err)
	}
	if err := pin.Unpin(p.Path, gone.Rel); err != nil {
		t.Error(err)
	}
}
