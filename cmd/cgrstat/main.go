// Command cgrstat measures memory-cgroup reclaim latency with BPF and
// aggregates it up the cgroup tree with the kernel's rstat framework.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(report(run(), os.Stderr))
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return execute(ctx, newRootCmd(), os.Args[1:])
}

// report prints err as one line and returns the exit status.
func report(err error, stderr io.Writer) int {
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "cgrstat: interrupted; what this run created is removed")
	case err != nil:
		fmt.Fprintf(stderr, "cgrstat: %v\n", err)
	}
	return exitStatus(err)
}
