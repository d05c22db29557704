// Command kernellab runs cgrstat's kernel tests (TestKernel*) on real Debian
// kernels booted in QEMU, one guest per kernel.
//
//	go run ./cmd/kernellab                         # bookworm, trixie and sid
//	go run ./cmd/kernellab -suites sid -v -run Smoke
//	KERNEL=/boot/vmlinuz go run ./cmd/kernellab    # only that kernel
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kernellab:", err)
		os.Exit(1)
	}
}

type options struct {
	suites  string
	kernel  string
	cache   string
	verbose bool
	run     string
	timeout time.Duration
	mem     int
	pkgs    string
	refresh bool
	kvm     bool
	cli     bool
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.suites, "suites", kernellab.DefaultSuites, "comma-separated Debian suites whose cloud kernel to boot")
	flag.StringVar(&o.kernel, "kernel", os.Getenv("KERNEL"), "boot only this bzImage instead of the suites' kernels (env KERNEL)")
	flag.StringVar(&o.cache, "cache", "", "kernel cache directory (default $XDG_CACHE_HOME/cgrstat/kernellab)")
	flag.BoolVar(&o.verbose, "v", false, "stream each guest's console")
	flag.StringVar(&o.run, "run", "", "run only tests matching this regexp (go test -run)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "time limit for each guest, boot included")
	flag.IntVar(&o.mem, "mem", kernellab.DefaultMemoryMiB, "guest memory in MiB")
	flag.StringVar(&o.pkgs, "pkgs", "", "comma-separated Go packages whose tests run in the guest (default: every package with a TestKernel* test)")
	flag.BoolVar(&o.refresh, "refresh", false, "ask the Debian archive for newer kernels even if the cached ones are fresh")
	flag.BoolVar(&o.cli, "cli", true, "build ./cmd/cgrstat into the guest as /bin/cgrstat ($CGRSTAT_BIN)")
	flag.BoolVar(&o.kvm, "kvm", false, "use KVM instead of TCG (only where /dev/kvm can run a guest)")
	flag.Parse()
	return o
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := parseFlags()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if o.cache == "" {
		var err error
		if o.cache, err = kernellab.DefaultCacheDir(); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "kernellab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	initrd, err := buildGuest(ctx, o, tmp)
	if err != nil {
		return err
	}
	fmt.Printf("kernellab: guest built in %.1fs\n", time.Since(start).Seconds())
	kernels, err := o.kernels()
	if err != nil {
		return err
	}
	var outcomes []outcome
	for _, k := range kernels {
		if ctx.Err() != nil {
			break
		}
		oc := runKernel(ctx, o, k, initrd)
		report(oc)
		outcomes = append(outcomes, oc)
	}
	return summarize(outcomes, ctx.Err())
}

// kernel is one entry of the matrix: a suite to fetch, or a given image.
type kernel struct {
	label string
	suite *kernellab.Suite
	path  string
}

func (o options) kernels() ([]kernel, error) {
	if o.kernel != "" {
		return []kernel{{label: "kernel", path: o.kernel}}, nil
	}
	suites, err := kernellab.ParseSuites(o.suites)
	if err != nil {
		return nil, err
	}
	var ks []kernel
	for _, s := range suites {
		ks = append(ks, kernel{label: s.Name, suite: &s})
	}
	return ks, nil
}

// outcome is one guest's line in the summary.
type outcome struct {
	label, release string
	result         kernellab.Result
	err            error
	elapsed        time.Duration
	logFile        string
}

func runKernel(ctx context.Context, o options, k kernel, initrd string) outcome {
	start := time.Now()
	oc := outcome{label: k.label, release: "?"}
	defer func() { oc.elapsed = time.Since(start) }()
	path, release, err := resolveKernel(ctx, o, k)
	if err != nil {
		oc.err = err
		oc.elapsed = time.Since(start)
		return oc
	}
	oc.release = release
	fmt.Printf("kernellab: booting %s (%s)\n", k.label, release)
	cfg := kernellab.Config{
		Kernel:    path,
		Initramfs: initrd,
		MemoryMiB: o.mem,
		Timeout:   o.timeout,
		KVM:       o.kvm,
	}
	if o.verbose {
		cfg.Console = os.Stdout
	}
	oc.result, oc.err = kernellab.Boot(ctx, cfg)
	if oc.err == nil && oc.result.Pass == 0 {
		oc.err = errors.New("no test passed: the guest ran nothing (check -pkgs and -run)")
	}
	oc.logFile = saveConsole(o.cache, k.label, oc.result.Console)
	oc.elapsed = time.Since(start)
	return oc
}

func resolveKernel(ctx context.Context, o options, k kernel) (string, string, error) {
	if k.suite == nil {
		rel, err := kernellab.KernelRelease(k.path)
		if err != nil {
			return "", "", fmt.Errorf("reading the release of %s: %w", k.path, err)
		}
		return k.path, rel, nil
	}
	f := kernellab.Fetcher{CacheDir: o.cache, Refresh: o.refresh}
	if o.verbose {
		f.Log = os.Stdout
	}
	return f.Fetch(ctx, *k.suite)
}

// saveConsole keeps the last console of each kernel next to the cache, so a
// failure can be read in full after the summary's tail.
func saveConsole(cache, label string, console []byte) string {
	dir := filepath.Join(cache, "logs")
	if os.MkdirAll(dir, 0o755) != nil {
		return ""
	}
	p := filepath.Join(dir, label+".console")
	if os.WriteFile(p, console, 0o644) != nil {
		return ""
	}
	return p
}

// report shows why a kernel failed: the failing binaries' output when tests
// failed, the console's tail otherwise (panic, timeout, broken init).
func report(oc outcome) {
	if oc.err == nil {
		return
	}
	fmt.Printf("\n=== %s (%s) FAILED: %v\n", oc.label, oc.release, oc.err)
	shown := false
	if errors.Is(oc.err, kernellab.ErrTestsFailed) {
		for _, t := range oc.result.Tests {
			if t.Exit != 0 || t.Fail != 0 {
				fmt.Printf("--- output of %s (exit %d):\n%s\n", t.Name, t.Exit, excerpt(oc.result.Output(t.Name)))
				shown = true
			}
		}
	}
	if !shown && len(oc.result.Console) > 0 {
		fmt.Printf("--- last lines of the console:\n%s\n", kernellab.Tail(oc.result.Console, 40))
	}
	if oc.logFile != "" {
		fmt.Printf("--- full console: %s\n", oc.logFile)
	}
	fmt.Println()
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

// printSkips lists each skipped guest test with its reason (the line go
// test prints before "--- SKIP"), so that no skip goes unseen in CI logs.
func printSkips(label string, console []byte) {
	lines := strings.Split(string(console), "\n")
	for i, l := range lines {
		if name, ok := strings.CutPrefix(strings.TrimSpace(l), "--- SKIP: "); ok {
			reason := ""
			if i > 0 {
				reason = strings.TrimSpace(lines[i-1])
			}
			fmt.Printf("%s: skipped %s: %s\n", label, name, reason)
		}
	}
}

func summarize(outcomes []outcome, interrupted error) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUITE\tKERNEL\tPASSED\tFAILED\tSKIPPED\tSECONDS\tSTATUS")
	failed := 0
	for _, oc := range outcomes {
		status := "ok"
		if oc.err != nil {
			status = "FAIL"
			failed++
		}
		r := oc.result
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.1f\t%s\n", oc.label, oc.release, r.Pass, r.Fail, r.Skip, oc.elapsed.Seconds(), status)
	}
	tw.Flush()
	for _, oc := range outcomes {
		printSkips(oc.label, oc.result.Console)
	}
	// The plain closing line CI runners look for.
	fmt.Printf("kernellab: %d passed, %d failed\n", len(outcomes)-failed, failed)
	if interrupted != nil {
		return errors.New("interrupted")
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d kernels failed", failed, len(outcomes))
	}
	return nil
}

// buildGuest compiles the CLI and the test binaries and packs them with
// busybox into an initramfs shared by every kernel.
func buildGuest(ctx context.Context, o options, tmp string) (string, error) {
	mod, err := goList(ctx, "-m", "-f", "{{.Path}} {{.Dir}}")
	if err != nil {
		return "", err
	}
	modPath, modDir, _ := strings.Cut(strings.TrimSpace(mod), " ")
	pkgs, err := testPackages(ctx, o.pkgs, modPath)
	if err != nil {
		return "", err
	}
	if len(pkgs) == 0 {
		return "", errors.New("no package has a TestKernel* test; use -pkgs")
	}
	cfg := kernellab.InitramfsConfig{Run: o.run, TestTimeout: o.timeout * 4 / 5}
	for _, p := range pkgs {
		t, files, err := buildTest(ctx, p, modPath, modDir, tmp)
		if err != nil {
			return "", err
		}
		cfg.Tests = append(cfg.Tests, t)
		cfg.Files = append(cfg.Files, files...)
	}
	if !o.cli {
		fmt.Println("kernellab: note: -cli=false; the guest has no cgrstat binary")
	} else if cli, err := buildCLI(ctx, modPath, modDir, tmp); err != nil {
		return "", err
	} else if cli != "" {
		cfg.Files = append(cfg.Files, kernellab.File{Src: cli, Dst: kernellab.GuestCLI})
	}
	initrd := filepath.Join(tmp, "initrd.cpio.gz")
	return initrd, kernellab.BuildInitramfs(initrd, cfg)
}

// pkg is a Go package whose tests run in the guest.
type pkg struct {
	importPath, dir string
	testFiles       []string
}

// testPackages lists the -pkgs packages, or discovers every package with a
// "func TestKernel" so that new kernel tests join the lab by themselves.
func testPackages(ctx context.Context, pkgsFlag, modPath string) ([]pkg, error) {
	patterns := []string{"./..."}
	if pkgsFlag != "" {
		patterns = strings.Split(pkgsFlag, ",")
	}
	out, err := goList(ctx, append([]string{"-e", "-f",
		`{{.ImportPath}}|{{.Dir}}|{{join .TestGoFiles ","}}|{{join .XTestGoFiles ","}}`}, patterns...)...)
	if err != nil {
		return nil, err
	}
	var pkgs []pkg
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			continue
		}
		p := pkg{importPath: f[0], dir: f[1]}
		for _, name := range append(strings.Split(f[2], ","), strings.Split(f[3], ",")...) {
			if name != "" {
				p.testFiles = append(p.testFiles, filepath.Join(p.dir, name))
			}
		}
		if pkgsFlag != "" || isKernelTestPackage(p, modPath) {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, nil
}

var kernelTestFunc = regexp.MustCompile(`(?m)^func TestKernel\w*\(`)

// isKernelTestPackage leaves out the lab's own package: its TestKernelLab*
// tests boot guests themselves and have no business inside one.
func isKernelTestPackage(p pkg, modPath string) bool {
	if p.importPath == modPath+"/internal/kernellab" {
		return false
	}
	for _, f := range p.testFiles {
		b, err := os.ReadFile(f)
		if err == nil && kernelTestFunc.Match(b) {
			return true
		}
	}
	return false
}

// buildTest compiles p's tests and returns them with the package's testdata,
// placed where the binary's working directory will be, as under go test.
func buildTest(ctx context.Context, p pkg, modPath, modDir, tmp string) (kernellab.TestBinary, []kernellab.File, error) {
	rel := strings.TrimPrefix(strings.TrimPrefix(p.importPath, modPath), "/")
	name := strings.ReplaceAll(rel, "/", "-")
	if name == "" {
		name = "root"
	}
	bin := filepath.Join(tmp, name+".test")
	if _, err := kernellab.Go(ctx, "", "test", "-c", "-o", bin, p.importPath); err != nil {
		return kernellab.TestBinary{}, nil, fmt.Errorf("building tests of %s: %w", p.importPath, err)
	}
	if _, err := os.Stat(bin); err != nil {
		return kernellab.TestBinary{}, nil, fmt.Errorf("%s has no tests to build", p.importPath)
	}
	guestDir := "/src/" + rel
	t := kernellab.TestBinary{Name: name, Path: bin, Dir: guestDir}
	var files []kernellab.File
	if fi, err := os.Stat(filepath.Join(p.dir, "testdata")); err == nil && fi.IsDir() {
		files = append(files, kernellab.File{Src: filepath.Join(p.dir, "testdata"), Dst: guestDir + "/testdata"})
	}
	return t, files, nil
}

// buildCLI builds ./cmd/cgrstat for tests that exec the CLI ($CGRSTAT_BIN).
func buildCLI(ctx context.Context, modPath, modDir, tmp string) (string, error) {
	bin := filepath.Join(tmp, "cgrstat")
	if _, err := kernellab.Go(ctx, "", "build", "-o", bin, modPath+"/cmd/cgrstat"); err != nil {
		return "", fmt.Errorf("building cgrstat: %w", err)
	}
	return bin, nil
}

func goList(ctx context.Context, args ...string) (string, error) {
	return kernellab.Go(ctx, "", append([]string{"list"}, args...)...)
}
