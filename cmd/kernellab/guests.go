package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

// guest is one line of the matrix: a kernel, its architecture and the
// cgroup version the memory controller is mounted on.
type guest struct {
	suite   string // "" for a -kernel image
	arch    string
	cgroup  int
	subset  string // subsetAll, subsetKernel or subsetAllButHost
	kernel  kernellab.Kernel
	initrd  string // the architecture's guest
	modules string // the kernel's modules archive, if it needs any
	disk    string

	// skip says why the configuration cannot run on this kernel; such a
	// guest is listed, not booted, and does not fail the run.
	skip    string
	result  kernellab.Result
	err     error
	elapsed time.Duration
	logFile string
}

func (g *guest) label() string {
	name := g.suite
	if name == "" {
		name = "kernel"
	}
	return fmt.Sprintf("%s/%s/v%d", name, g.arch, g.cgroup)
}

// plan fetches the kernels and lists every guest, skipped ones included.
func plan(ctx context.Context, o options, versions []int) ([]*guest, error) {
	kernels, err := fetchKernels(ctx, o)
	if err != nil {
		return nil, err
	}
	var guests []*guest
	for _, k := range kernels {
		for _, v := range versions {
			g := &guest{suite: k.Suite.Name, arch: k.Suite.Arch, cgroup: v, kernel: k}
			if v == 1 && k.Config != "" {
				ok, why, err := k.CgroupV1()
				if err != nil {
					return nil, fmt.Errorf("%s: reading its config: %w", k.Release, err)
				}
				if !ok {
					g.skip = why + ": no cgroup v1 memory controller"
				}
			}
			guests = append(guests, g)
		}
	}
	assignSubsets(o, guests)
	return guests, nil
}

func fetchKernels(ctx context.Context, o options) ([]kernellab.Kernel, error) {
	if o.kernel != "" {
		rel, err := kernellab.KernelRelease(o.kernel)
		if err != nil {
			return nil, fmt.Errorf("reading the release of %s: %w", o.kernel, err)
		}
		return []kernellab.Kernel{{Suite: kernellab.Suite{Arch: o.arch}, Release: rel, Vmlinuz: o.kernel}}, nil
	}
	suites, err := kernellab.ParseSuites(o.suites)
	if err != nil {
		return nil, err
	}
	f := kernellab.Fetcher{CacheDir: o.cache, Refresh: o.refresh}
	if o.verbose {
		f.Log = os.Stdout
	}
	var ks []kernellab.Kernel
	for _, s := range suites {
		k, err := f.Fetch(ctx, s)
		if err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// build is an architecture's guest initramfs, built in the background:
// path and err are set when done is closed.
type build struct {
	done chan struct{}
	path string
	err  error
}

// prepare makes the scratch disk all guests share (each writes to its own
// overlay) and one modules archive per kernel, and starts building one
// guest initramfs per architecture, one after another in the order the
// lanes first need them: a lane starts its first guest as soon as that
// guest's architecture is built, not once every architecture is (the
// arm64 guest took 17 s to build after amd64's 10 s, 2026-12-03).
func prepare(ctx context.Context, o options, tmp string, guests []*guest, lanes [][]*guest) (map[string]*build, error) {
	disk := filepath.Join(tmp, "scratch.ext4")
	if err := kernellab.MakeDisk(ctx, disk, kernellab.DefaultDiskMiB); err != nil {
		return nil, err
	}
	builds := map[string]*build{}
	var arches []string
	busybox := map[string]string{}
	for depth := 0; ; depth++ {
		more := false
		for _, lane := range lanes {
			if depth >= len(lane) {
				continue
			}
			more = true
			if g := lane[depth]; builds[g.arch] == nil {
				builds[g.arch] = &build{done: make(chan struct{})}
				arches = append(arches, g.arch)
				busybox[g.arch] = g.kernel.Busybox
			}
		}
		if !more {
			break
		}
	}
	mods := map[string]string{}
	for _, g := range guests {
		if g.skip != "" {
			continue
		}
		g.disk = disk
		if len(g.kernel.Modules) == 0 {
			continue // virtio-blk built in, or a -kernel image, which must have it built in
		}
		key := g.arch + "/" + g.kernel.Release
		if _, ok := mods[key]; !ok {
			p := filepath.Join(tmp, "modules-"+strings.ReplaceAll(key, "/", "_")+".cpio.gz")
			if err := kernellab.BuildModules(p, g.kernel.Modules); err != nil {
				return nil, err
			}
			mods[key] = p
		}
		g.modules = mods[key]
	}
	go func() {
		for _, arch := range arches {
			b := builds[arch]
			start := time.Now()
			if b.err = ctx.Err(); b.err == nil {
				b.path, b.err = buildGuest(ctx, o, tmp, arch, busybox[arch])
			}
			if b.err == nil {
				fmt.Printf("kernellab: %s guest built in %.1fs\n", arch, time.Since(start).Seconds())
			}
			close(b.done)
		}
	}()
	return builds, nil
}

// planLanes splits the runnable guests into lanes (schedule) by their
// expected times (estimates), and says so on stdout.
func planLanes(o options, guests []*guest) ([][]*guest, map[*guest]float64) {
	var queue []*guest
	for _, g := range guests {
		if g.skip == "" {
			queue = append(queue, g)
		}
	}
	est := estimates(o, queue)
	lanes := schedule(queue, est, o.parallel)
	for i, lane := range lanes {
		var names []string
		sum := 0.0
		for _, g := range lane {
			names = append(names, g.label())
			sum += est[g]
		}
		fmt.Printf("kernellab: lane %d, about %.0fs: %s\n", i+1, sum, strings.Join(names, " "))
	}
	return lanes, est
}

// runAll boots the guests of each lane, one lane per worker, each guest
// once its architecture's build is done; a lane whose queue runs dry
// takes the last guest not yet started from the lane with the most work
// left. A failed build fails its architecture's guests.
func runAll(ctx context.Context, o options, lanes [][]*guest, est map[*guest]float64, builds map[string]*build) {
	var mu sync.Mutex // the lanes' queues, and one guest's report at a time
	next := func(i int) *guest {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		if len(lanes[i]) > 0 {
			g := lanes[i][0]
			lanes[i] = lanes[i][1:]
			return g
		}
		// Steal the shortest guest of the lane with the most work left.
		from, left := -1, 0.0
		for j, lane := range lanes {
			sum := 0.0
			for _, g := range lane {
				sum += est[g]
			}
			if len(lane) > 0 && sum > left {
				from, left = j, sum
			}
		}
		if from < 0 {
			return nil
		}
		lane := lanes[from]
		g := lane[len(lane)-1]
		lanes[from] = lane[:len(lane)-1]
		return g
	}
	var wg sync.WaitGroup
	for i := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := next(i); g != nil; g = next(i) {
				b := builds[g.arch]
				select {
				case <-b.done:
				case <-ctx.Done():
				}
				switch {
				case ctx.Err() != nil:
					g.err = errors.New("not run: interrupted")
				case b.err != nil:
					g.err = fmt.Errorf("not run: %w", b.err)
				default:
					g.initrd = b.path
					runGuest(ctx, o, g)
				}
				mu.Lock()
				report(g)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, lane := range lanes {
		for _, g := range lane {
			g.err = errors.New("not run: interrupted")
		}
	}
}

// schedule splits the guests into n lanes that run side by side, so that
// the lanes end as close together as est allows: the longest lane decides
// when the run ends. Each lane runs its guests longest first. With up to
// maxExhaustive assignments to try (two lanes: 16 guests) every split is
// tried and the one whose longest lane is shortest wins (the matrix's
// six guests are too few for longest-first alone: with the times of
// December 2026 it made a lane of 1,111 s where 1,073 s was possible);
// beyond that each guest, longest first, joins the lane that ends first.
func schedule(guests []*guest, est map[*guest]float64, n int) [][]*guest {
	sorted := append([]*guest{}, guests...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if est[sorted[i]] != est[sorted[j]] {
			return est[sorted[i]] > est[sorted[j]]
		}
		return slower(sorted[i], sorted[j])
	})
	n = max(min(n, len(sorted)), 1)
	best := make([]int, len(sorted)) // the lane of each guest
	if tries := math.Pow(float64(n), float64(len(sorted))); tries <= maxExhaustive {
		bestEnd := math.Inf(1)
		lane := make([]int, len(sorted))
		ends := make([]float64, n)
		var try func(i int)
		try = func(i int) {
			longest := 0.0
			for _, e := range ends {
				longest = max(longest, e)
			}
			if longest >= bestEnd {
				return
			}
			if i == len(sorted) {
				bestEnd = longest
				copy(best, lane)
				return
			}
			for l := 0; l < n; l++ {
				if l > 0 && ends[l] == ends[l-1] {
					continue // a lane that ends where the one before it does: the same split
				}
				lane[i] = l
				ends[l] += est[sorted[i]]
				try(i + 1)
				ends[l] -= est[sorted[i]]
			}
		}
		try(0)
	} else {
		ends := make([]float64, n)
		for i, g := range sorted {
			l := 0
			for j := range ends {
				if ends[j] < ends[l] {
					l = j
				}
			}
			best[i] = l
			ends[l] += est[g]
		}
	}
	lanes := make([][]*guest, n)
	for i, g := range sorted {
		lanes[best[i]] = append(lanes[best[i]], g)
	}
	// The lane that starts with the longest guest first.
	sort.SliceStable(lanes, func(i, j int) bool {
		return len(lanes[j]) == 0 || len(lanes[i]) > 0 && est[lanes[i][0]] > est[lanes[j][0]]
	})
	return lanes
}

// maxExhaustive bounds the splits schedule tries.
const maxExhaustive = 1 << 16

// slower orders guests by how long they take when nothing else says,
// longest first: the native guests that run (nearly) every test, then the
// emulated ones, then the native kernel subset, a newer kernel before an
// older one within each (more verifier work per load). It breaks ties in
// schedule.
func slower(a, b *guest) bool {
	ka, kb := a.subset == subsetKernel, b.subset == subsetKernel
	na, nb := a.arch == kernellab.HostArch(), b.arch == kernellab.HostArch()
	if ra, rb := rank(na, ka), rank(nb, kb); ra != rb {
		return ra < rb
	}
	return releaseLess(b.kernel.Release, a.kernel.Release)
}

// rank is a guest's place in slower's order.
func rank(native, kernelSubset bool) int {
	switch {
	case native && !kernelSubset:
		return 0
	case !native:
		return 1
	}
	return 2
}

// staticEstimate is a guest's expected time in seconds when no earlier run
// on this machine says (two cores, two guests at once). The fresh-clone CI
// runs of 2026-12-03 measured the 7.2 amd64 guest running all but
// host-only 730 s, arm64 7.3's kernel subset 455-475 s and 6.12's
// 220-240 s, the native kernel subset 170-260 s; then loads read the
// kernel's BTF once and the 7.x verifier's work on the flush halved,
// which cut the tests measured alone by 45-50% on 7.x and less on older
// kernels: these are those times scaled so, until a full run says.
func staticEstimate(g *guest) float64 {
	switch {
	case g.arch == kernellab.HostArch() && g.subset != subsetKernel:
		return 430
	case g.arch != kernellab.HostArch():
		if n := releaseNumbers(g.kernel.Release); len(n) > 0 && n[0] >= 7 {
			return 260
		}
		return 180
	case g.cgroup == 1:
		return 150
	}
	return 200
}
func runGuest(ctx context.Context, o options, g *guest) {
	start := time.Now()
	fmt.Printf("kernellab: booting %s (%s)\n", g.label(), g.kernel.Release)
	cfg := kernellab.Config{
		Kernel:    g.kernel.Vmlinuz,
		Initramfs: g.initrd,
		Arch:      g.arch,
		Disk:      g.disk,
		MemoryMiB: o.mem,
		Timeout:   guestTimeout(o, g.arch),
		KVM:       o.kvm && g.arch == kernellab.HostArch(),
		Append:    kernellab.GuestCmdline(g.cgroup, g.disk != ""),
	}
	if g.subset != subsetAll {
		cfg.Append += " " + kernellab.SubsetArg(g.subset)
	}
	if g.modules != "" {
		cfg.More = []string{g.modules}
	}
	if o.verbose {
		w := &prefixWriter{prefix: g.label() + "| ", w: os.Stdout}
		defer w.Flush()
		cfg.Console = w
	}
	g.result, g.err = kernellab.Boot(ctx, cfg)
	if crashedBeforeInit(ctx, g.result, g.err) {
		// Seen once: an int3 Oops in timer code while the kernel patched its
		// own text at boot, under QEMU's multi-threaded TCG and a loaded
		// host. No test had run; that crash is the emulator's. One more
		// boot, said on the console; a second crash fails the guest.
		fmt.Printf("kernellab: %s crashed before init ran (%v); booting it once more\n", g.label(), g.err)
		g.result, g.err = kernellab.Boot(ctx, cfg)
	}
	if g.err == nil && g.result.Pass == 0 {
		g.err = errors.New("no test passed: the guest ran nothing (check -pkgs and -run)")
	}
	if g.err == nil && g.result.Cgroup != fmt.Sprintf("v%d", g.cgroup) {
		g.err = fmt.Errorf("the guest mounted cgroup %s, not v%d", g.result.Cgroup, g.cgroup)
	}
	if g.err == nil && g.disk != "" && g.result.TmpDir != "ext4" {
		g.err = fmt.Errorf("the guest's TMPDIR is on %s, not the ext4 scratch disk", g.result.TmpDir)
	}
	g.logFile = saveConsole(o.logs, strings.ReplaceAll(g.label(), "/", "_"), g.result.Console)
	g.elapsed = time.Since(start)
}

// prefixWriter prefixes each console line with its guest, so that the
// consoles of guests running at once stay readable.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    bytes.Buffer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.Write(b)
	for {
		line, err := p.buf.ReadBytes('\n')
		if err != nil {
			p.buf.Write(line) // an incomplete line waits for its end
			return len(b), nil
		}
		fmt.Fprintf(p.w, "%s%s", p.prefix, line)
	}
}

func (p *prefixWriter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf.Len() > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf.Bytes())
		p.buf.Reset()
	}
}

// saveConsole keeps each guest's console in the run's log directory, so a
// failure can be read in full after the summary's tail.
func saveConsole(dir, label string, console []byte) string {
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, label+".console")
	if os.WriteFile(p, console, 0o644) != nil {
		return ""
	}
	return p
}

// report shows one guest's result line and, if it failed, why: the failing
// binaries' output when tests failed, the console's tail otherwise (panic,
// timeout, broken init).
func report(g *guest) {
	fmt.Println(resultLine(g))
	if g.err == nil {
		return
	}
	fmt.Printf("\n=== %s (%s) FAILED: %v\n", g.label(), g.kernel.Release, g.err)
	shown := false
	if errors.Is(g.err, kernellab.ErrTestsFailed) {
		for _, t := range g.result.Tests {
			if t.Exit != 0 || t.Fail != 0 {
				fmt.Printf("--- output of %s (exit %d):\n%s\n", t.Name, t.Exit, excerpt(g.result.Output(t.Name)))
				shown = true
			}
		}
	}
	if !shown && len(g.result.Console) > 0 {
		fmt.Printf("--- last lines of the console:\n%s\n", kernellab.Tail(g.result.Console, 40))
	}
	if g.logFile != "" {
		fmt.Printf("--- full console: %s\n", g.logFile)
	}
	fmt.Println()
}

// resultLine is the guest's one line: what CI logs are read for.
func resultLine(g *guest) string {
	r := g.result
	status := "ok"
	switch {
	case g.skip != "":
		return fmt.Sprintf("kernellab: RESULT %-28s %-28s SKIP (%s)", g.label(), g.kernel.Release, g.skip)
	case g.err != nil:
		status = "FAIL"
	}
	return fmt.Sprintf("kernellab: RESULT %-28s %-28s %-4s pass=%d fail=%d skip=%d tmpdir=%s flush=%s %.0fs",
		g.label(), g.kernel.Release, status, r.Pass, r.Fail, r.Skip, orDash(r.TmpDir), orDash(strings.Join(flushModes(r.Console), ",")), g.elapsed.Seconds())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// flushModes lists the flush modes whose TestKernelFlushModes subtest
// passed in the guest: the modes the lab proved on that kernel.
func flushModes(console []byte) []string {
	var modes []string
	sc := bufio.NewScanner(bytes.NewReader(console))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "--- PASS: TestKernelFlushModes/"); ok {
			if mode, _, ok := strings.Cut(rest, " "); ok {
				modes = append(modes, mode)
			}
		}
	}
	sort.Strings(modes)
	return modes
}

// excerpt picks the part of a test binary's output that says why it failed.
// A Go panic (a test timeout included) starts with the panic message and the
// tests still running; the goroutine dump after it fills any tail.
func excerpt(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") {
			var fails []string
			for _, f := range lines[:i] {
				if strings.Contains(f, "--- FAIL") {
					fails = append(fails, f)
				}
			}
			end := min(i+40, len(lines))
			return strings.Join(append(fails, lines[i:end]...), "\n") + "\n[...]"
		}
	}
	return lastLines(out, 80)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{"[...]"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func countRunnable(guests []*guest) int {
	n := 0
	for _, g := range guests {
		if g.skip == "" {
			n++
		}
	}
	return n
}

func countFailed(guests []*guest) int {
	n := 0
	for _, g := range guests {
		if g.skip == "" && g.err != nil {
			n++
		}
	}
	return n
}

// crashedBeforeInit reports a kernel that panicked or oopsed before the
// guest's init announced itself (no release was reported).
func crashedBeforeInit(ctx context.Context, r kernellab.Result, err error) bool {
	return err != nil && ctx.Err() == nil && r.Release == "" &&
		(errors.Is(err, kernellab.ErrKernelPanic) || errors.Is(err, kernellab.ErrKernelBug))
}

// guestTimeout is the time limit of a guest of arch: three times -timeout
// for an architecture QEMU emulates instruction by instruction. arm64 on an
// amd64 host ran its tests 3-4 times slower than an amd64 guest under TCG
// (the whole arm64 6.12 guest took 1004 s on a lightly loaded host) until
// the guests emulated pointer authentication with pauth-impdef: the kernel
// subset then took 226-498 s against 243-252 s in the amd64 guests (CI,
// 2026-12-03). The margin stays for a loaded host.
func guestTimeout(o options, arch string) time.Duration {
	if arch != kernellab.HostArch() {
		return 3 * o.timeout
	}
	return o.timeout
}
