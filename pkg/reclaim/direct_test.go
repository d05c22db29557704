package reclaim_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// TestKernelDirectReclaim: when the machine, not a cgroup, runs short, the
// task that stalls in global direct reclaim has it counted as cause direct
// in its memory cgroup and its ancestors, outside the seed's memory-cgroup
// totals. The helper, in a cgroup with no limit, fills page cache and then
// maps anonymous memory until little is left: with no swap only page cache
// can go, and the faults outrun kswapd. It presses the whole machine, so it
// runs only in the kernel lab's guests.
func TestKernelDirectReclaim(t *testing.T) {
	if !testenv.Required() {
		t.Skip("induces global memory pressure: only in the kernel lab's guests")
	}
	if runtime.GOARCH != "amd64" {
		// Not yet measured there: the lab's arm64 guests are emulated
		// instruction by instruction, where one press takes minutes. The
		// amd64 guests run the same BPF object's direct-reclaim path.
		t.Skip("runs in the lab's amd64 guests only: arm64 guests are emulated (TCG), and this test was not sized for them")
	}
	h := testenv.Hierarchy(t)
	loads := twoLoads(t)
	top := testenv.Cgroups(t, h, "d", "park")
	enableMemory(t, h, top)
	d := top.Child("d")
	hp := startHelper(t, h, top.Child("park"))
	file := filepath.Join(os.TempDir(), testenv.Name(t))
	t.Cleanup(func() { os.Remove(file) })

	// Whether a fault reclaims itself or kswapd gets there first is a
	// race: the helper presses again, at most pressRounds times, while no
	// task of the machine has stalled in direct reclaim.
	before := allocstalls(t)
	if err := hp.do("join", d.Path); err != nil {
		t.Fatal(err)
	}
	var stalls uint64
	for round := 1; round <= pressRounds && stalls == 0; round++ {
		if err := hp.do("press", file); err != nil {
			t.Fatalf("press %d: %v", round, err)
		}
		stalls = allocstalls(t) - before
		t.Logf("press %d: allocstall rose by %d", round, stalls)
	}
	if err := hp.do("join", top.Child("park").Path); err != nil {
		t.Fatal(err)
	}

	var first uint64
	for i, p := range loads {
		ds, err := p.ReadOne(d)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := p.ReadOne(top)
		if err != nil {
			t.Fatal(err)
		}
		dc := ds.Causes[reclaim.Direct]
		t.Logf("load %d: %s: %d direct reclaims, %d ns, %d pages; allocstall rose by %d", i, d.Rel, dc.Count, dc.DelayNS, dc.Reclaimed, stalls)
		if dc.Count == 0 || dc.DelayNS == 0 {
			t.Errorf("load %d: %s stalled in direct reclaim %d times for %d ns, want both > 0", i, d.Rel, dc.Count, dc.DelayNS)
		}
		// allocstall counts every task's direct reclaims, each at least
		// once (do_try_to_free_pages counts again when it retries), so the
		// helper's share cannot exceed the rise.
		if dc.Count > stalls {
			t.Errorf("load %d: %d direct reclaims in %s, but allocstall rose by only %d", i, dc.Count, d.Rel, stalls)
		}
		// No limit anywhere: the seed's memory-cgroup fields stay empty.
		for _, s := range []reclaim.Stat{ds, ts} {
			if s.Count != 0 || s.DelayNS != 0 || s.Reclaimed != 0 || s.MaxNS != 0 || s.Forced.Count != 0 {
				t.Errorf("load %d: %s: vmscan_count %d, delay %d, pages %d, max %d, forced %d; want all 0 (direct reclaim is not memory-cgroup reclaim)",
					i, s.Path, s.Count, s.DelayNS, s.Reclaimed, s.MaxNS, s.Forced.Count)
			}
		}
		all, err := p.Subtree(top)
		if err != nil {
			t.Fatal(err)
		}
		if msg := sumsHold(all, map[string][]string{top.Rel: {d.Rel, top.Child("park").Rel}}); msg != "" {
			t.Errorf("load %d: %s", i, msg)
		}
		if tc := ts.Causes[reclaim.Direct]; tc != dc {
			t.Errorf("load %d: %s has direct %+v, its only busy child %s %+v", i, top.Rel, tc, d.Rel, dc)
		}
		// Both loads saw the same reclaims; their delays differ by the
		// programs' own run time.
		if i == 0 {
			first = dc.Count
		} else if dc.Count != first {
			t.Errorf("load %d counted %d direct reclaims, load 0 %d", i, dc.Count, first)
		}
		assertNothingLost(t, fmt.Sprintf("load %d", i), p)
	}
}

// allocstalls is the sum of /proc/vmstat's allocstall_* counters: global
// direct reclaims, by zone.
func allocstalls(t *testing.T) uint64 {
	t.Helper()
	f, err := os.Open("/proc/vmstat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sum uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if strings.HasPrefix(k, "allocstall_") {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("/proc/vmstat: %q: %v", sc.Text(), err)
			}
			sum += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// pressStep is how much anonymous memory press maps at a time, and
// pressMargin how much MemAvailable it leaves: with no swap, more would
// call the OOM killer.
const (
	pressRounds = 3
	pressStep   = 16 << 20
	pressMargin = 256 << 20
)

// press fills page cache with file, as large as free memory or the file
// system's free space allows, then maps and writes anonymous memory,
// MADV_POPULATE_WRITE faulting it in the kernel at full speed, until MemAvailable
// is down to pressMargin; then unmaps it all. The cache is synced first:
// direct reclaim does not write dirty pages back.
func press(file string) error {
	mi, err := meminfo()
	if err != nil {
		return err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(file), &fs); err != nil {
		return err
	}
	size := min(mi["MemFree"], int64(fs.Bavail)*fs.Bsize-64<<20)
	if err := fillFile(file, int(size)); err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	var maps [][]byte
	defer func() {
		for _, m := range maps {
			unix.Munmap(m)
		}
	}()
	for {
		mi, err := meminfo()
		if err != nil {
			return err
		}
		if mi["MemAvailable"] < pressMargin+pressStep {
			return nil
		}
		m, err := unix.Mmap(-1, 0, pressStep, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		maps = append(maps, m)
		// Huge pages where the kernel has them (an error only means
		// small pages): a 2 MiB fault needs a free block that the low
		// watermark rarely leaves, and its allocation reclaims itself
		// (defrag "madvise", the default) instead of waiting on kswapd.
		unix.Madvise(m, unix.MADV_HUGEPAGE)
		if err := unix.Madvise(m, unix.MADV_POPULATE_WRITE); err != nil {
			return fmt.Errorf("populating %d MiB of anonymous memory: %w", pressStep>>20, err)
		}
	}
}

// meminfo is /proc/meminfo in bytes.
func meminfo() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/meminfo: %q: %v", line, err)
		}
		if len(f) == 3 && f[2] == "kB" {
			n <<= 10
		}
		out[strings.TrimSuffix(f[0], ":")] = n
	}
	return out, nil
}
