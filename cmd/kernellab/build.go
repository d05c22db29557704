package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

// buildGuest compiles the CLI and the test binaries for arch and packs them
// with busybox into an initramfs shared by every kernel of that arch.
func buildGuest(ctx context.Context, o options, tmp, arch, busybox string) (string, error) {
	mod, err := goList(ctx, "-m", "-f", "{{.Path}}")
	if err != nil {
		return "", err
	}
	modPath := strings.TrimSpace(mod)
	pkgs, err := testPackages(ctx, o.pkgs)
	if err != nil {
		return "", err
	}
	if len(pkgs) == 0 {
		return "", errors.New("no package has a TestKernel* test; use -pkgs")
	}
	dir := filepath.Join(tmp, arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	run := o.run
	if run == "" {
		run = kernelTests
	}
	cfg := kernellab.InitramfsConfig{Arch: arch, Busybox: busybox, Run: run, SubsetSkips: map[string]string{subsetKernel: skipPattern(subsetKernel), subsetAllButHost: skipPattern(subsetAllButHost)}, Count: o.count, TestTimeout: guestTimeout(o, arch) * 4 / 5}
	// The test binaries and the CLI build side by side, one go command
	// per CPU: each links alone, and linking takes most of a build whose
	// packages the build cache holds (the arm64 guest: 31 s one by one).
	tests := make([]kernellab.TestBinary, len(pkgs))
	files := make([][]kernellab.File, len(pkgs))
	var cli string
	jobs := make([]func() error, 0, len(pkgs)+1)
	for i, p := range pkgs {
		jobs = append(jobs, func() (err error) {
			tests[i], files[i], err = buildTest(ctx, p, modPath, dir, arch)
			return err
		})
	}
	if o.cli {
		jobs = append(jobs, func() (err error) {
			cli, err = buildCLI(ctx, modPath, dir, arch)
			return err
		})
	} else {
		fmt.Println("kernellab: note: -cli=false; the guest has no cgrstat binary")
	}
	if err := runJobs(jobs, runtime.NumCPU()); err != nil {
		return "", err
	}
	cfg.Tests = tests
	for _, f := range files {
		cfg.Files = append(cfg.Files, f...)
	}
	if cli != "" {
		cfg.Files = append(cfg.Files, kernellab.File{Src: cli, Dst: kernellab.GuestCLI})
	}
	initrd := filepath.Join(dir, "initrd.cpio.gz")
	return initrd, kernellab.BuildInitramfs(initrd, cfg)
}

// runJobs runs jobs, n at a time, and returns the first error in their order.
func runJobs(jobs []func() error, n int) error {
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = job()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// pkg is a Go package whose tests run in the guest.
type pkg struct {
	importPath, dir string
	testFiles       []string
}

// testPackages lists the -pkgs packages, or discovers every package with a
// "func TestKernel" so that new kernel tests join the lab by themselves.
func testPackages(ctx context.Context, pkgsFlag string) ([]pkg, error) {
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
		if pkgsFlag != "" || hasKernelTest(p) {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, nil
}

var kernelTestFunc = regexp.MustCompile(`(?m)^func TestKernel\w*\(`)

// hasKernelTest reports whether a package has TestKernel* tests. The lab's
// own tests, which boot guests, are TestLab*: they have no business inside
// a guest and are not picked.
func hasKernelTest(p pkg) bool {
	for _, f := range p.testFiles {
		b, err := os.ReadFile(f)
		if err == nil && kernelTestFunc.Match(b) {
			return true
		}
	}
	return false
}

// buildTest compiles p's tests for arch and returns them with the package's
// testdata, placed where the binary's working directory will be, as under
// go test.
func buildTest(ctx context.Context, p pkg, modPath, dir, arch string) (kernellab.TestBinary, []kernellab.File, error) {
	rel := strings.TrimPrefix(strings.TrimPrefix(p.importPath, modPath), "/")
	name := strings.ReplaceAll(rel, "/", "-")
	if name == "" {
		name = "root"
	}
	bin := filepath.Join(dir, name+".test")
	if _, err := kernellab.GoFor(ctx, arch, "", "test", "-c", "-o", bin, p.importPath); err != nil {
		return kernellab.TestBinary{}, nil, fmt.Errorf("building tests of %s for %s: %w", p.importPath, arch, err)
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
func buildCLI(ctx context.Context, modPath, dir, arch string) (string, error) {
	bin := filepath.Join(dir, "cgrstat")
	if _, err := kernellab.GoFor(ctx, arch, "", "build", "-o", bin, modPath+"/cmd/cgrstat"); err != nil {
		return "", fmt.Errorf("building cgrstat for %s: %w", arch, err)
	}
	return bin, nil
}

func goList(ctx context.Context, args ...string) (string, error) {
	return kernellab.Go(ctx, "", append([]string{"list"}, args...)...)
}
