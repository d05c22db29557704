// Command cgrstat measures memory-cgroup reclaim latency with BPF and
// aggregates it up the cgroup tree with the kernel's rstat framework.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cgrstat/cgrstat/pkg/exitcode"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cgrstat: %v\n", err)
		os.Exit(exitcode.Of(err))
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return execute(ctx, newRootCmd(), os.Args[1:])
}
