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

// interrupted is the error of a command stopped by SIGINT or SIGTERM;
// cleaned says that it removed what it made (commands that make nothing
// have nothing to remove).
type interrupted struct{ cleaned bool }

func (e interrupted) Error() string {
	if e.cleaned {
		return "interrupted; what this run created is removed"
	}
	return "interrupted"
}
func (e interrupted) Unwrap() error { return context.Canceled }

// report prints err as one line and returns the exit status.
func report(err error, stderr io.Writer) int {
	switch {
	case errors.Is(err, context.Canceled):
		var i interrupted
		if !errors.As(err, &i) {
			i.cleaned = true
		}
		fmt.Fprintf(stderr, "cgrstat: %v\n", i)
	case err != nil:
		fmt.Fprintf(stderr, "cgrstat: %v\n", err)
	}
	return exitStatus(err)
}
