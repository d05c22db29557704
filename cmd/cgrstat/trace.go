package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/internal/kallsyms"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// traceFlags are trace's own flags.
type traceFlags struct {
	load     loadFlags
	min      time.Duration
	json     bool
	stack    bool
	count    int
	duration time.Duration
	rate     int
}

func newTraceCmd(g *globals) *cobra.Command {
	var f traceFlags
	cmd := &cobra.Command{
		Use:   "trace [CGROUP...]",
		Short: "Stream slow reclaims: who stalled, in which cgroup, whose limit, why",
		Long: `trace prints one line per reclaim that took at least --min (default 10ms;
--min 0 shows every one), as it ends: the time, the cause (max, high,
proactive, direct), how long the task stalled, the pages reclaimed, the
process (pid, tid when another thread, command), the CPU, the stalled task's
memory cgroup and, when another, the target: the cgroup whose limit the
reclaim enforced. --json prints one JSON object per line instead (time, pid,
tid, comm, cgroup, cgroup_id, identity, target, target_id, cause,
duration_ns, reclaimed_pages, cpu, and stack with --stack). --stack adds the
kernel stack of each event, named from /proc/kallsyms.

With CGROUP arguments (at most 4), only tasks in those subtrees; the
threshold, the subtrees and the rate limit are decided in BPF, and a trace
costs the collectors nothing for reclaims shorter than every running
trace's --min. --rate caps events per second (a storm is counted, not
printed); on exit trace says on stderr how many events it printed and how
many it dropped, and why (the rate limit; the ring buffer full because
output fell behind).

Each trace has a ring buffer of its own: several traces, serve and watch
at once each see every event (up to 8 readers). trace loads the collectors
if nothing is loaded at --pin-path, and unloads on exit only what it
loaded. --count and --duration stop it; without them it runs until
SIGINT or SIGTERM, its normal end (exit 0); a signal before --count events
or --duration is an interruption (130, 143).`,
		Example: `  cgrstat trace
  cgrstat trace --min 50ms kubepods.slice
  cgrstat trace --min 0 --json --count 100 test/child1 | jq .duration_ns
  cgrstat trace --stack --duration 1m`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd.Context(), g, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.load.register(cmd)
	cmd.Flags().DurationVar(&f.min, "min", 10*time.Millisecond, "shortest reclaim shown (0: every reclaim)")
	cmd.Flags().BoolVar(&f.json, "json", false, "one JSON object per line")
	cmd.Flags().BoolVar(&f.stack, "stack", false, "add each event's kernel stack")
	cmd.Flags().IntVar(&f.count, "count", 0, "stop after this many events (0: no limit)")
	cmd.Flags().DurationVar(&f.duration, "duration", 0, "stop after this long (0: no limit)")
	cmd.Flags().IntVar(&f.rate, "rate", events.DefaultRateLimit, "most events per second, the rest counted as dropped (0: no limit)")
	return cmd
}

func (f *traceFlags) check(args []string) error {
	switch {
	case f.min < 0:
		return usage(fmt.Errorf("--min %s: want a duration from 0", f.min))
	case f.count < 0:
		return usage(fmt.Errorf("--count %d: want 0 (no limit) or more", f.count))
	case f.duration < 0:
		return usage(fmt.Errorf("--duration %s: want 0 (no limit) or more", f.duration))
	case f.rate < 0:
		return usage(fmt.Errorf("--rate %d: want 0 (no limit) or more events per second", f.rate))
	case len(args) > events.MaxCgroups:
		return usage(fmt.Errorf("at most %d cgroups, not %d", events.MaxCgroups, len(args)))
	}
	return nil
}

func (f *traceFlags) run(ctx context.Context, g *globals, args []string, out, errOut io.Writer) error {
	if err := f.check(args); err != nil {
		return err
	}
	h, cgs, err := g.cgroups(args)
	if err != nil {
		return err
	}
	opts := events.Options{Min: f.min, RateLimit: float64(f.rate), Stack: f.stack}
	if f.rate == 0 {
		opts.RateLimit = -1
	}
	for _, c := range cgs {
		id, err := cgroup.ID(c)
		if err != nil {
			return usage(err)
		}
		opts.Cgroups = append(opts.Cgroups, id)
	}
	var syms *kallsyms.Table
	if f.stack {
		if syms, err = kallsyms.Load(); err != nil {
			return usage(fmt.Errorf("--stack: %w", err))
		}
	}
	mf := monitorFlags{load: f.load}
	s, err := mf.openSession(ctx, g, args, readout.Filter{Depth: -1})
	if err != nil {
		return err
	}
	r, err := readout.OpenEvents(g.pinPath, opts)
	if err != nil {
		return errors.Join(err, s.close())
	}
	// Said once the stream is open: from here on no reclaim is missed.
	where := "every cgroup"
	if len(cgs) > 0 {
		where = fmt.Sprintf("the subtrees of %d cgroups", len(cgs))
	}
	loaded := "using the collectors loaded at " + g.pinPath
	if s.loaded {
		loaded = "loaded the collectors at " + g.pinPath + ", unloading them on exit"
	}
	fmt.Fprintf(errOut, "cgrstat trace: tracing reclaims of %s and longer in %s; %s\n", f.min, where, escape.String(loaded))
	t := &tracer{flags: f, r: r, paths: h.Paths(), syms: syms, out: out}
	err = t.stream(ctx)
	if errors.Is(err, events.ErrUnloaded) {
		err = fmt.Errorf("trace: %w (pin path %s)", err, escape.String(g.pinPath))
	}
	cerr := r.Close()
	c, _ := r.Counts()
	fmt.Fprintf(errOut, "cgrstat trace: %d events, %d dropped (rate limit %d, ring buffer full %d)\n",
		t.printed, c.Dropped(), c.RateLimit, c.RingFull)
	return errors.Join(err, cerr, s.close())
}

// tracer is one run of trace.
type tracer struct {
	flags   *traceFlags
	r       *readout.EventReader
	paths   *cgroup.Paths
	syms    *kallsyms.Table
	out     io.Writer
	printed int
}

// stream prints events until --count, --duration or ctx ends it.
func (t *tracer) stream(ctx context.Context) error {
	var expired <-chan time.Time
	if t.flags.duration > 0 {
		timer := time.NewTimer(t.flags.duration)
		defer timer.Stop()
		expired = timer.C
	}
	done := make(chan struct{})
	defer close(done)
	stopped := make(chan error, 1)
	go func() {
		var err error
		select {
		case <-done:
			return
		case <-expired:
		case <-ctx.Done():
			err = t.interrupted(ctx)
		}
		stopped <- err
		// The Read below returns what the ring buffer holds, then ErrStopped.
		_ = t.r.Stop()
	}()
	for t.flags.count == 0 || t.printed < t.flags.count {
		ev, err := t.r.Read()
		if errors.Is(err, events.ErrStopped) {
			return <-stopped
		}
		if err != nil {
			return err
		}
		if err := t.print(ev); err != nil {
			return err
		}
		t.printed++
	}
	return nil
}

// interrupted is what a signal that ends trace returns: without --count
// or --duration it runs until stopped, its normal end (exit 0); with
// either, what was asked for was not all shown, an interruption.
func (t *tracer) interrupted(ctx context.Context) error {
	if t.flags.count == 0 && t.flags.duration == 0 {
		return nil
	}
	return ctx.Err()
}

func (t *tracer) print(ev events.Event) error {
	e := format.Event{Event: ev}
	e.CgroupPath, _ = t.paths.Path(ev.Cgroup, ev.PID)
	if ev.Target != 0 {
		e.TargetPath, _ = t.paths.Path(ev.Target, ev.PID)
	}
	if t.syms != nil {
		e.Stack = make([]string, 0, len(ev.Stack))
		for _, a := range ev.Stack {
			e.Stack = append(e.Stack, t.syms.Name(a))
		}
		e.Stack = belowTracepoint(e.Stack)
	}
	if t.flags.json {
		return format.EventJSON(t.out, e)
	}
	return format.EventText(t.out, e)
}

// belowTracepoint drops the frames of cgrstat's own programs and of the
// tracepoint's call into them (bpf_prog_*, bpf_trace_run*, __traceiter_*,
// __bpf_trace_*), whose number varies with the kernel: the stack starts
// where the kernel reached the end of the reclaim.
func belowTracepoint(frames []string) []string {
	for len(frames) > 0 {
		f := frames[0]
		if !strings.HasSuffix(f, " [bpf]") && !strings.HasPrefix(f, "bpf_trace_run") &&
			!strings.HasPrefix(f, "__traceiter_") && !strings.HasPrefix(f, "__bpf_trace_") {
			break
		}
		frames = frames[1:]
	}
	return frames
}
