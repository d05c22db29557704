package reclaim_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// helperEnv makes the test binary a reclaim helper (see helperMain).
const helperEnv = "CGRSTAT_RECLAIM_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helperMain()
		return
	}
	os.Exit(testenv.Main(m)) // which unloads the shared loads (sharedLoad)
}

// helperMain reads commands on stdin, one a line, and answers each with
// "ok" or "error ...": "reclaim SCRATCH CGROUP" joins the cgroup (its
// absolute path), fills page cache in SCRATCH and has the kernel reclaim
// it; "join CGROUP" only joins; "fill FILE BYTES" writes a file that stays;
// "press FILE" presses the whole machine's memory (see press);
// "fillsync FILE BYTES" writes one syncing every MiB and reads it back;
// "anon BYTES" touches that much anonymous memory, then frees it;
// "write FILE VALUE" writes a cgroup file, taking EAGAIN and EBUSY (a
// reclaim that fell short) as done. One long-lived process moves from
// cgroup to cgroup, which costs far less than a process per cgroup.
func helperMain() {
	version, _ := strconv.Atoi(os.Getenv(helperEnv))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		var err error
		switch {
		case len(f) == 3 && f[0] == "reclaim" && version == 1:
			err = reclaimV1(f[2], f[1])
		case len(f) == 3 && f[0] == "reclaim":
			_, err = stress.Child(f[2], 2<<20, 1, version, f[1])
		case len(f) == 2 && f[0] == "join":
			err = cgroup.Cgroup{Rel: f[1], Path: f[1]}.Write("cgroup.procs", "0")
		case len(f) == 3 && f[0] == "fill":
			n, _ := strconv.Atoi(f[2])
			err = fillFile(f[1], n)
		case len(f) == 3 && f[0] == "fillsync":
			n, _ := strconv.Atoi(f[2])
			err = fillSync(f[1], n)
		case len(f) == 2 && f[0] == "anon":
			n, _ := strconv.Atoi(f[1])
			err = anon(n)
		case len(f) == 2 && f[0] == "press":
			err = press(f[1])
		case len(f) == 3 && f[0] == "write":
			err = os.WriteFile(f[1], []byte(f[2]), 0)
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EBUSY) {
				err = nil
			}
		default:
			err = fmt.Errorf("bad command %q", in.Text())
		}
		if err != nil {
			fmt.Printf("error %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Println("ok")
		}
	}
}

// reclaimV1 joins the test's own cgroup at path, fills 2 MiB of page cache
// in dir and lowers the cgroup's limit below its usage, then restores it.
// (stress lowers limits only in scratch cgroups it makes itself; these
// cgroups are the test's.)
func reclaimV1(path, dir string) error {
	c := cgroup.Cgroup{Rel: path, Path: path}
	if err := c.Write("cgroup.procs", "0"); err != nil {
		return err
	}
	file := filepath.Join(dir, fmt.Sprintf("cgrstat-reclaim-%d", os.Getpid()))
	defer os.Remove(file)
	if err := fillFile(file, 2<<20); err != nil {
		return err
	}
	old, err := c.Read("memory.limit_in_bytes")
	if err != nil {
		return err
	}
	usage, err := c.Read("memory.usage_in_bytes")
	if err != nil {
		return err
	}
	u, err := strconv.ParseInt(usage, 10, 64)
	if err != nil {
		return err
	}
	err = c.Write("memory.limit_in_bytes", strconv.FormatInt(max(u-1<<20, 1<<20), 10))
	if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EAGAIN) {
		err = nil // reclaim ran and fell short
	}
	return errors.Join(err, c.Write("memory.limit_in_bytes", old))
}

// fillSync writes n bytes, syncing every MiB, and reads them back: a
// page-cache writer that a cgroup of a few MiB can hold, since its dirty
// pages (which reclaim cannot free at once) never exceed 1 MiB. Without
// the syncs, a Go helper writing 48 MiB in an 8 MiB memory.max was
// OOM-killed on 6.12.
func fillSync(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for done := 0; done < n && err == nil; done += len(buf) {
		if _, err = f.Write(buf[:min(n-done, len(buf))]); err == nil && (done+len(buf))%(1<<20) == 0 {
			err = f.Sync()
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	for err == nil {
		_, err = f.Read(buf)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

// fillFile writes n bytes in small writes: no large buffer of the helper's
// own is charged to the cgroup beside the file's pages.
func fillFile(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for ; n > 0 && err == nil; n -= len(buf) {
		_, err = f.Write(buf[:min(n, len(buf))])
	}
	return errors.Join(err, f.Close())
}

// helperTimeout bounds one command: a helper stuck in the kernel is killed
// (a signal ends a reclaim write) and the test fails, rather than hanging.
const helperTimeout = 3 * time.Minute

type helper struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startHelper starts a helper; at cleanup it joins park and exits.
func startHelper(t *testing.T, h *cgroup.Hierarchy, park cgroup.Cgroup) *helper {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", helperEnv, h.Version))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hp := &helper{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		if err := hp.do("join", park.Path); err != nil {
			t.Errorf("parking the helper: %v", err)
		}
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	})
	return hp
}

func (hp *helper) do(args ...string) error {
	if _, err := fmt.Fprintln(hp.in, strings.Join(args, " ")); err != nil {
		return err
	}
	done := make(chan bool, 1)
	go func() { done <- hp.out.Scan() }()
	select {
	case ok := <-done:
		if !ok {
			return fmt.Errorf("helper gone: %v", hp.out.Err())
		}
	case <-time.After(helperTimeout):
		hp.cmd.Process.Kill()
		return fmt.Errorf("helper stuck for %v in %q: killed", helperTimeout, args)
	}
	if r := hp.out.Text(); r != "ok" {
		return errors.New(r)
	}
	return nil
}

// reclaimIn has the helper reclaim in c: page cache on tmpfs (no swap: the
// reclaim runs and finds nothing to take), and every tenth time on disk, so
// that pages are reclaimed too.
func (hp *helper) reclaimIn(c cgroup.Cgroup, i int) error {
	scratch := os.TempDir()
	if _, err := os.Stat("/dev/shm"); err == nil && i%10 != 0 {
		scratch = "/dev/shm"
	}
	return hp.do("reclaim", scratch, c.Path)
}

// twoLoads are walk mode and the best mode the kernel allows (fentry in
// the kernel lab, walk again on a host that refuses fentry): the loads
// every test of the package shares (see sharedLoad).
func twoLoads(t *testing.T) []*readout.Handle {
	t.Helper()
	var out []*readout.Handle
	for i, mode := range []loader.Mode{loader.Walk, loader.Auto} {
		p, _ := sharedLoad(t, mode)
		t.Logf("load %d: flush mode %s", i, p.Record.Flush)
		out = append(out, p)
	}
	return out
}

// lostBefore is what each shared load had lost when the running test took
// it (by pin path): a test answers for what is lost while it runs.
var lostBefore sync.Map

// sharedLoad is the package's load of mode (testenv.Shared, unloaded after
// the last test by TestMain). Each load costs 10-20 s of verification in
// the kernel lab's emulated arm64 guests, and these tests made fifteen.
// None needs a load of its own: each builds, reclaims in and reads its own
// cgroups, and what it checks of the load as a whole, the lost counters,
// it checks from where they stood when it began (lostSince).
func sharedLoad(t *testing.T, mode loader.Mode) (*readout.Handle, *cgroup.Hierarchy) {
	t.Helper()
	p, h := testenv.Shared(t, mode, 0)
	l, err := p.LostCounts()
	if err != nil {
		t.Fatal(err)
	}
	lostBefore.Store(p.Path, l)
	return p, h
}

// lostSince is what p lost since the running test took it.
func lostSince(t *testing.T, p *readout.Handle) readout.Lost {
	t.Helper()
	l, err := p.LostCounts()
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := lostBefore.Load(p.Path); ok {
		before := b.(readout.Lost)
		l.Events -= before.Events
		l.WaitedDeltas -= before.WaitedDeltas
		l.RstatMarks -= before.RstatMarks
		l.RemovedDeltas -= before.RemovedDeltas
	}
	return l
}

// churnSize is how many cgroups the churn soak creates, reclaims in and
// removes: thousands on the host, fewer under the kernel lab's TCG.
func churnSize() int {
	if testenv.Required() {
		return 150
	}
	return 2000
}

// TestKernelChurn: cgroups come and go, some read before they go and some
// not, while readers run. Every removed cgroup's reclaim must stay in its
// ancestors, in every flush mode, with its map entry gone.
func TestKernelChurn(t *testing.T) {
	h := testenv.Hierarchy(t)
	loads := twoLoads(t)
	top := testenv.Cgroups(t, h, "a", "a/b", "park")
	b := top.Child("a").Child("b")
	enableMemory(t, h, top, top.Child("a"), b)
	hp := startHelper(t, h, top.Child("park"))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	readErrs := make(chan error, 16)
	for _, p := range loads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readWhileChurning(p, top, stop, &reads, readErrs)
		}()
	}

	n := churnSize()
	var churned []uint64
	var prev []cgroup.Cgroup // the last iteration's cgroups, children last
	start := time.Now()
	for i := 0; i < n; i++ {
		c := b.Child(fmt.Sprintf("c%d", i))
		made := []cgroup.Cgroup{c}
		if i%4 == 0 { // some nested: the leaf's parent goes too
			made = append(made, c.Child("d"))
		}
		for _, m := range made {
			if err := m.Mkdir(); err != nil {
				t.Fatal(err)
			}
			if len(made) > 1 && m == made[0] {
				enableMemory(t, h, m)
			}
			id, err := cgroup.ID(m)
			if err != nil {
				t.Fatal(err)
			}
			churned = append(churned, id)
		}
		if err := hp.reclaimIn(made[len(made)-1], i); err != nil {
			t.Fatalf("reclaim in %s: %v", made[len(made)-1].Rel, err)
		}
		removeAll(t, prev)
		prev = made
		if i%3 == 0 { // some cgroups are read before they go
			for _, p := range loads {
				if _, err := p.ReadOne(made[0]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := hp.do("join", top.Child("park").Path); err != nil {
		t.Fatal(err)
	}
	removeAll(t, prev)
	close(stop)
	wg.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Error(err)
	}
	t.Logf("%d cgroups churned in %v, %d concurrent reads", len(churned), time.Since(start).Round(time.Millisecond), reads.Load())

	// Both loads saw the same events: every ancestor agrees exactly on
	// counts and pages. Delays differ by the programs' own run time, since
	// each load times the reclaim itself.
	var first []reclaim.Stat
	for i, p := range loads {
		got := ancestors(t, p, top)
		t.Logf("load %d: %s: %d reclaims, %d pages, %d forced", i, top.Rel, got[0].Count, got[0].Reclaimed, got[0].Forced.Count)
		if got[0].Count == 0 {
			t.Errorf("load %d: %s has no reclaim after the churn", i, top.Rel)
		}
		if i == 0 {
			first = got
			continue
		}
		for j := range got {
			g, f := got[j], first[j]
			if g.Count != f.Count || g.Reclaimed != f.Reclaimed || g.Forced.Count != f.Forced.Count {
				t.Errorf("%s: load %d has count %d, pages %d, forced %d; load 0 has %d, %d, %d",
					g.Path, i, g.Count, g.Reclaimed, g.Forced.Count, f.Count, f.Reclaimed, f.Forced.Count)
			}
		}
	}
	dying := dyingMemcgs(t, h, b)
	for i, p := range loads {
		assertForgotten(t, p, churned, dying)
		assertNothingLost(t, fmt.Sprintf("load %d", i), p)
	}
}

// dyingMemcgs is how many removed memory cgroups the kernel still holds:
// below b on cgroup v2 (cgroup.stat), on the whole machine on v1
// (/proc/cgroups counts them with the live ones).
func dyingMemcgs(t *testing.T, h *cgroup.Hierarchy, b cgroup.Cgroup) int {
	t.Helper()
	if h.Version == 2 {
		s, err := b.Read("cgroup.stat")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(s, "\n") {
			var n int
			if _, err := fmt.Sscanf(line, "nr_dying_descendants %d", &n); err == nil {
				return n
			}
		}
		t.Fatalf("no nr_dying_descendants in %s/cgroup.stat", b.Rel)
	}
	procs, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		t.Fatal(err)
	}
	num := -1
	for _, line := range strings.Split(string(procs), "\n") {
		var hier, n, enabled int
		if _, err := fmt.Sscanf(line, "memory %d %d %d", &hier, &n, &enabled); err == nil {
			num = n
		}
	}
	live := 0
	filepath.WalkDir(h.Mount, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			live++
		}
		return nil
	})
	if num < 0 {
		t.Fatal("no memory line in /proc/cgroups")
	}
	return max(num-live, 0)
}

// enableMemory gives the children of cgs the memory controller (cgroup v2).
func enableMemory(t *testing.T, h *cgroup.Hierarchy, cgs ...cgroup.Cgroup) {
	t.Helper()
	for _, c := range cgs {
		if _, err := h.EnableMemory(c); err != nil {
			t.Fatal(err)
		}
	}
}

func removeAll(t *testing.T, cgs []cgroup.Cgroup) {
	t.Helper()
	for i := len(cgs) - 1; i >= 0; i-- {
		if err := cgs[i].Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

// readWhileChurning reads the top's stat and subtree until stop; the
// top's count never goes down.
func readWhileChurning(p *readout.Handle, top cgroup.Cgroup, stop chan struct{}, reads *atomic.Int64, errs chan<- error) {
	var last uint64
	for {
		select {
		case <-stop:
			return
		default:
		}
		st, err := p.ReadOne(top)
		if err == nil {
			_, err = p.Subtree(top)
		}
		if err == nil && st.Count < last {
			err = fmt.Errorf("%s went down from %d to %d", top.Rel, last, st.Count)
		}
		if err != nil {
			errs <- err
			return
		}
		last = st.Count
		reads.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
}

// ancestors reads top, top/a and top/a/b through the stat file, and checks
// that read --all's consistent copy says the same.
func ancestors(t *testing.T, p *readout.Handle, top cgroup.Cgroup) []reclaim.Stat {
	t.Helper()
	cgs := []cgroup.Cgroup{top, top.Child("a"), top.Child("a").Child("b")}
	var out []reclaim.Stat
	for _, c := range cgs {
		st, err := p.ReadOne(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	all, err := p.Subtree(top)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range out {
		for _, a := range all {
			if a.ID == st.ID && !a.Collected().Equal(st.Collected()) {
				t.Errorf("%s: the stat file says %+v, read --all %+v", st.Path, st, a)
			}
		}
	}
	return out
}

// assertForgotten: a removed cgroup keeps an entry only while the kernel
// holds it (until cgroup_release).
func assertForgotten(t *testing.T, p *readout.Handle, ids []uint64, dying int) {
	t.Helper()
	entries, err := p.CopyStats()
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, id := range ids {
		if entries[id] != nil {
			left++
		}
	}
	if left > dying {
		t.Errorf("%s: %d of %d removed cgroups still have map entries, but the kernel holds only %d dying ones", p.Path, left, len(ids), dying)
	}
	t.Logf("%s: %d entries after the churn, %d of them for removed cgroups (%d dying memcgs)", p.Path, len(entries), left, dying)
}

func assertNothingLost(t *testing.T, what string, p *readout.Handle) {
	t.Helper()
	if l := lostSince(t, p); l.Any() {
		t.Errorf("%s: lost %+v, want nothing", what, l)
	}
}

// TestKernelConsistentSubtree: many read --all answers while reclaim and
// flushes run; in every one, each inner cgroup (which has no tasks) is
// exactly the sum of its children, field by field and bucket by bucket.
func TestKernelConsistentSubtree(t *testing.T) {
	h := testenv.Hierarchy(t)
	loads := twoLoads(t)
	top := testenv.Cgroups(t, h, "a", "a/x", "a/y", "b", "b/z", "park")
	leaves := []cgroup.Cgroup{top.Child("a").Child("x"), top.Child("a").Child("y"), top.Child("b").Child("z")}
	enableMemory(t, h, top, top.Child("a"), top.Child("b"))
	inner := map[string][]string{top.Rel: {top.Child("a").Rel, top.Child("b").Rel},
		top.Child("a").Rel: {leaves[0].Rel, leaves[1].Rel}, top.Child("b").Rel: {leaves[2].Rel}}

	rounds := 60
	if testenv.Required() {
		rounds = 15
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, leaf := range leaves[:2] {
		hp := startHelper(t, h, top.Child("park"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if err := hp.reclaimIn(leaves[(i+r)%len(leaves)], r); err != nil {
					t.Errorf("reclaim in %s: %v", leaf.Rel, err)
					return
				}
			}
		}()
	}
	// Stat-file reads flush meanwhile: walks in walk mode, rstat otherwise.
	for _, p := range loads {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, c := range append(leaves, top) {
					p.ReadOne(c)
				}
			}
		}()
	}
	var answers atomic.Int64
	var readers sync.WaitGroup
	for r := 0; r < 4; r++ {
		p := loads[r%len(loads)]
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				all, err := p.Subtree(top)
				if err != nil {
					t.Error(err)
					return
				}
				answers.Add(1)
				if msg := sumsHold(all, inner); msg != "" {
					t.Errorf("answer %d: %s", answers.Load(), msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	final, err := loads[0].Subtree(top)
	if err != nil {
		t.Fatal(err)
	}
	if final[0].Count == 0 {
		t.Errorf("%s saw no reclaim", top.Rel)
	}
	t.Logf("%d answers, each exact; %s: %d reclaims", answers.Load(), top.Rel, final[0].Count)
	if answers.Load() < 20 {
		t.Errorf("only %d answers during the stress", answers.Load())
	}
}

// sumsHold checks parent = sum of children in every counter and bucket.
func sumsHold(all []reclaim.Stat, inner map[string][]string) string {
	byPath := map[string]reclaim.Stat{}
	for _, s := range all {
		byPath[s.Path] = s
	}
	for parent, kids := range inner {
		var sum reclaim.Stat
		for _, k := range kids {
			c := byPath[k]
			sum.Add(&c)
		}
		got := byPath[parent]
		sum.ID, sum.Path = got.ID, got.Path
		if !got.Collected().Equal(sum) {
			return fmt.Sprintf("%s: count %d, delay %d, pages %d, forced %d; its children sum to %d, %d, %d, %d (or differ in a bucket, cause or maximum)",
				parent, got.Count, got.DelayNS, got.Reclaimed, got.Forced.Count, sum.Count, sum.DelayNS, sum.Reclaimed, sum.Forced.Count)
		}
	}
	return ""
}
