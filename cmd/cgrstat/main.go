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
	"strings"
	"syscall"

	"github.com/cgrstat/cgrstat/pkg/escape"
)

func main() {
	os.Exit(report(run(), os.Stderr))
}

func run() error {
	ctx, stop := signalContext()
	defer stop()
	return execute(ctx, newRootCmd(), os.Args[1:])
}

// signalContext is cancelled by SIGINT or SIGTERM, with the signal as its
// cause, so that the exit status can say which one stopped the command.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if s, ok := (<-sigs).(syscall.Signal); ok {
			cancel(signalCause{s})
		}
	}()
	return ctx, func() { signal.Stop(sigs); cancel(nil) }
}

// signalCause is why a command's context ended: a signal.
type signalCause struct{ sig syscall.Signal }

func (c signalCause) Error() string { return c.sig.String() }

// interrupted is the error of a command stopped by SIGINT or SIGTERM;
// cleaned says that it removed what it made (commands that make nothing
// have nothing to remove). sig is the signal, 0 when unknown.
type interrupted struct {
	cleaned bool
	sig     syscall.Signal
}

func (e interrupted) Error() string {
	if e.cleaned {
		return "interrupted; what this run created is removed"
	}
	return "interrupted"
}
func (e interrupted) Unwrap() error { return context.Canceled }

// status is the exit status of a command a signal stopped: 128 plus the
// signal's number, as shells report a process the signal killed (130 for
// SIGINT, 143 for SIGTERM), so that a script tells an interruption from a
// failure (1). Without a known signal it is SIGINT's.
func (e interrupted) status() int {
	if e.sig == 0 {
		return 128 + int(syscall.SIGINT)
	}
	return 128 + int(e.sig)
}

// report prints err and returns the exit status. Every line is escaped:
// messages quote cgroup names and paths, which anyone who can make a
// cgroup chooses, and they must not drive the terminal. A joined error
// gets one line per part.
func report(err error, stderr io.Writer) int {
	var i interrupted
	switch {
	case errors.As(err, &i):
		fmt.Fprintf(stderr, "cgrstat: %v\n", i)
		return i.status()
	case errors.Is(err, context.Canceled):
		i.cleaned = true
		fmt.Fprintf(stderr, "cgrstat: %v\n", i)
		return i.status()
	case err != nil:
		for _, line := range errorLines(err) {
			fmt.Fprintf(stderr, "cgrstat: %s\n", escape.String(line))
		}
	}
	return exitStatus(err)
}

// errorLines splits what errors.Join made back into its parts; any other
// error is one line, whatever it holds.
func errorLines(err error) []string {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []string{err.Error()}
	}
	var lines, msgs []string
	for _, e := range j.Unwrap() {
		if e != nil {
			lines = append(lines, errorLines(e)...)
			msgs = append(msgs, e.Error())
		}
	}
	if strings.Join(msgs, "\n") != err.Error() { // fmt.Errorf with several %w
		return []string{err.Error()}
	}
	return lines
}
