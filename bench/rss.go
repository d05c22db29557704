package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

// Go starts a child inside the parent's address space (vfork), and at exec
// the kernel folds that space's high-water RSS into the child's. So a
// child's rusage shows the bench's own peak. A small launcher process in
// between makes the inherited peak the launcher's few MiB instead.
const (
	launchEnv    = "CGRSTAT_BENCH_LAUNCH"
	launchMarker = "cgrstat-bench-maxrss-kib: "
)

// launchMain runs os.Args[1:] and reports its peak RSS on stderr. It
// passes SIGTERM and SIGINT on, so that a server it runs can be stopped.
func launchMain() int {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	if err := cmd.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	fmt.Fprintf(os.Stderr, "%s%d\n", launchMarker, ru.Maxrss)
	return 0
}

// peakRSS runs args through the launcher and returns the peak RSS in KiB.
func peakRSS(args ...string) (int64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), launchEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	var kib int64
	_, after, ok := strings.Cut(stderr.String(), launchMarker)
	if _, err := fmt.Sscanf(after, "%d", &kib); !ok || err != nil {
		return 0, fmt.Errorf("no peak RSS in %q", stderr.String())
	}
	return kib, nil
}
