package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

// runLab boots each suite's kernel with the bench binary as the guest's
// only "test binary", and collects the result it prints.
func runLab(ctx context.Context, o options, tmp, cli string) ([]*Result, error) {
	initrd, err := buildLabInitramfs(ctx, o, tmp, cli)
	if err != nil {
		return nil, err
	}
	suites, err := kernellab.ParseSuites(o.suites)
	if err != nil {
		return nil, err
	}
	cache, err := kernellab.DefaultCacheDir()
	if err != nil {
		return nil, err
	}
	cpus := []int{0} // the lab's default
	if o.walkScale > 0 {
		cpus = o.walkCPUs
	}
	var results []*Result
	for _, s := range suites {
		if s.Arch != kernellab.HostArch() {
			// Timings of an emulated CPU say nothing about the real one.
			fmt.Printf("bench: not measuring %s: another architecture than this machine's\n", s)
			continue
		}
		for _, n := range cpus {
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			o.cpus = n
			r := runGuest(ctx, o, s, cache, initrd)
			printResult(os.Stdout, r)
			results = append(results, r)
		}
	}
	return results, nil
}

func buildLabInitramfs(ctx context.Context, o options, tmp, cli string) (string, error) {
	bin, err := goBuild(ctx, tmp, "bench", "bench-guest")
	if err != nil {
		return "", err
	}
	// The guest stops measuring a minute before the host would kill it.
	gc := guestConfig{config: o.config(kernellab.GuestCLI), Deadline: o.guestTimeout - time.Minute}
	gc.Verbose = true // the console is saved; progress there explains a failure
	gc.Scrapes = o.labScrapes
	gc.Emulated = true
	cfg, err := json.Marshal(gc)
	if err != nil {
		return "", err
	}
	initrd := filepath.Join(tmp, "bench-initrd.cpio.gz")
	err = kernellab.BuildInitramfs(initrd, kernellab.InitramfsConfig{
		Tests: []kernellab.TestBinary{{Name: "bench", Path: bin}},
		Files: []kernellab.File{{Src: cli, Dst: kernellab.GuestCLI}},
		Env:   []string{guestEnv + "=" + string(cfg)},
	})
	return initrd, err
}

// runGuest boots one kernel. A failure becomes the result's Error, with
// what the guest measured before it, if anything.
func runGuest(ctx context.Context, o options, s kernellab.Suite, cache, initrd string) *Result {
	start := time.Now()
	r, err := bootGuest(ctx, o, s, cache, initrd)
	if r == nil {
		r = &Result{}
	}
	r.Machine = s.Name
	if r.Seconds == 0 {
		r.Seconds = time.Since(start).Seconds()
	}
	if err != nil && r.Error == "" {
		r.Error = err.Error()
	}
	return r
}

func bootGuest(ctx context.Context, o options, s kernellab.Suite, cache, initrd string) (*Result, error) {
	f := kernellab.Fetcher{CacheDir: cache}
	k, err := f.Fetch(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("fetching the %s kernel: %w", s.Name, err)
	}
	fmt.Printf("bench: booting %s (%s), %d MiB\n", s.Name, k.Release, o.memMiB)
	cfg := kernellab.Config{Kernel: k.Vmlinuz, Initramfs: initrd, MemoryMiB: o.memMiB, Timeout: o.guestTimeout, CPUs: o.cpus}
	if o.verbose {
		cfg.Console = os.Stdout
	}
	res, bootErr := kernellab.Boot(ctx, cfg)
	log := saveConsole(cache, s.Name, res.Console)
	r, err := readConsole(res.Console)
	if err != nil {
		return nil, fmt.Errorf("%w (%v); console: %s\n%s", err, bootErr, log, kernellab.Tail(res.Console, 20))
	}
	if r.Error == "" && bootErr != nil {
		r.Error = fmt.Sprintf("%v; console: %s", bootErr, log)
	}
	return r, nil
}

// saveConsole keeps each guest's console beside the kernel cache.
func saveConsole(cache, suite string, console []byte) string {
	dir := filepath.Join(cache, "logs")
	p := filepath.Join(dir, "bench-"+suite+".console")
	if err := errors.Join(os.MkdirAll(dir, 0o755), os.WriteFile(p, console, 0o644)); err != nil {
		return "(not saved: " + err.Error() + ")"
	}
	return p
}

// writeJSON writes every result, failed ones included.
func writeJSON(path string, results []*Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	err = encodeResults(f, results)
	return errors.Join(err, f.Close())
}

func encodeResults(w io.Writer, results []*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Date    time.Time `json:"date"`
		Results []*Result `json:"results"`
	}{time.Now().UTC(), results})
}
