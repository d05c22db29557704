package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/watch"
)

func newWatchCmd(g *globals) *cobra.Command {
	var mf monitorFlags
	var interval time.Duration
	var count int
	var sortKey string
	var flat bool
	var slow time.Duration
	cmd := &cobra.Command{
		Use:   "watch [CGROUP]",
		Short: "A live, top-like view of reclaim per cgroup",
		Long: `watch shows, every --interval, each cgroup's reclaim activity over the last
interval: stall time (milliseconds spent in reclaim per second), reclaims per
second and pages reclaimed per second, busiest first, as a tree (default) or
flat, cut to the terminal. Each number is the cgroup's hierarchical total.
PSI ms/s is the kernel's memory pressure of the cgroup (memory.pressure some:
milliseconds per second in which at least one of its tasks stalled on memory,
reclaim or not; cgroup v2, moves every 2 s), THROT ms/s the time its tasks
slept as a penalty for staying above memory.high after reclaim (n/a where
the kernel refuses the fentry/fexit that measure it), and OOM the tasks the
OOM killer chose in it during the interval.

Keys: q or Ctrl-C quits, s cycles the sort key, t toggles tree and flat,
e shows (and hides) below the frame the latest reclaims under CGROUP that
took --slow or longer (default 10ms), as cgrstat trace prints them: watch
subscribes to those events only while they are shown.
When stdout is not a terminal, watch prints one frame per interval (like
top -b), every row, --count frames (default: until interrupted). A signal
before --count frames are shown is an interruption (exit status 130 for
SIGINT, 143 for SIGTERM); without --count it is the normal end (0).

watch loads the collectors if nothing is loaded at --pin-path, and unloads
on exit only what it loaded. 'cgrstat unload' meanwhile completes; watch
then says that nothing is loaded, and reads the next load at --pin-path.`,
		Example: `  cgrstat watch
  cgrstat watch --depth 4 --match kubepods --sort reclaims
  cgrstat watch --count 5 --flat > frames.txt`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := watch.ParseKey(sortKey)
			if err != nil {
				return usage(fmt.Errorf("--sort: %w", err))
			}
			if interval <= 0 || count < 0 || slow < 0 {
				return usage(errors.New("--interval must be positive, --count and --slow at least 0"))
			}
			filter, err := mf.filter()
			if err != nil {
				return err
			}
			s, err := mf.openSession(cmd.Context(), g, args, filter)
			if err != nil {
				return err
			}
			w := &watcher{src: s.src, count: count,
				view: watch.View{Sort: key, Tree: !flat, Interval: interval}}
			if f, ok := cmd.OutOrStdout().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				if w.slow, err = g.recentEvents(args, slow); err != nil {
					return errors.Join(err, s.close())
				}
				err = w.interactive(cmd.Context(), f)
			} else {
				err = w.batch(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			return errors.Join(err, s.close())
		},
	}
	mf.register(cmd)
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between frames")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many frames (0: until q, Ctrl-C or a signal)")
	cmd.Flags().StringVar(&sortKey, "sort", string(watch.ByStall), "sort key: stall, reclaims, pages, p99, psi, oom or path")
	cmd.Flags().BoolVar(&flat, "flat", false, "a flat list instead of a tree")
	cmd.Flags().DurationVar(&slow, "slow", 10*time.Millisecond, "shortest reclaim the e key shows below the frame")
	keys := make([]string, len(watch.Keys))
	for i, k := range watch.Keys {
		keys[i] = string(k)
	}
	_ = cmd.RegisterFlagCompletionFunc("sort", cobra.FixedCompletions(keys, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// watcher is one run of watch: the previous snapshot and the view.
type watcher struct {
	src   *readout.Source
	view  watch.View
	count int
	prev  *readout.Snapshot
	cur   *readout.Snapshot
	rows  []watch.Row
	// gone says, while nothing is loaded at the pin path (someone ran
	// unload), what watch shows instead of a frame; "" while a load is read.
	gone string
	// slow are the latest slow reclaims, shown on the e key (interactive).
	slow *recentEvents
}

// step reads a snapshot and computes the rates since the previous one.
// Without a load it keeps no snapshot and sets gone: the next load's
// counters start again from zero, and rates begin with its second read.
func (w *watcher) step() error {
	snap, err := w.src.Read()
	if errors.Is(err, loader.ErrNotLoaded) {
		w.prev, w.cur, w.rows = nil, nil, nil
		w.gone = fmt.Sprintf("%v: waiting for cgrstat to be loaded there again", err)
		return nil
	}
	if err != nil {
		return err
	}
	w.gone = ""
	w.prev, w.cur = w.cur, snap
	if w.prev != nil {
		w.rows = watch.Rates(w.prev, w.cur)
	}
	return nil
}

// batch prints a frame per interval, separated by blank lines. While no
// load is there it prints no frame and says so once on errOut, and once
// when a load is back; those intervals count in --count.
func (w *watcher) batch(ctx context.Context, out, errOut io.Writer) error {
	if err := w.step(); err != nil {
		return err
	}
	tick := time.NewTicker(w.view.Interval)
	defer tick.Stop()
	printed, wasGone := 0, false
	for frames := 0; w.count == 0 || frames < w.count; frames++ {
		select {
		case <-ctx.Done():
			return w.stopped(ctx)
		case <-tick.C:
		}
		if err := w.step(); err != nil {
			return err
		}
		if gone := w.gone != ""; gone != wasGone {
			wasGone = gone
			if gone {
				fmt.Fprintf(errOut, "cgrstat watch: %s\n", w.gone)
			} else {
				fmt.Fprintf(errOut, "cgrstat watch: loaded again at %s\n", w.src.PinPath())
			}
		}
		if w.prev == nil {
			continue
		}
		if printed > 0 {
			fmt.Fprintln(out)
		}
		printed++
		if err := watch.Write(out, w.view, w.cur, w.rows, watch.TextEOL); err != nil {
			return err
		}
	}
	return nil
}

// stopped is what a signal that ends watch returns: without --count it
// runs until stopped, and that is its normal end (exit 0); with --count
// the frames asked for were not all shown, an interruption (130 or 143).
func (w *watcher) stopped(ctx context.Context) error {
	if w.count == 0 {
		return nil
	}
	return ctx.Err()
}

// Terminal control: the alternate screen keeps the user's scrollback, the
// cursor is hidden while frames are drawn, and both come back on exit.
const (
	enterScreen = "\x1b[?1049h\x1b[?25l"
	leaveScreen = "\x1b[?25h\x1b[?1049l"
	home        = "\x1b[H"
	clearBelow  = "\x1b[J"
)

// interactive draws frames in place until q, Ctrl-C or ctx ends. The
// terminal is in raw mode (so keys arrive unbuffered, and Ctrl-C is a key,
// not a signal) and is restored on every way out.
func (w *watcher) interactive(ctx context.Context, out *os.File) error {
	keys, restore, err := rawKeys()
	if err != nil {
		return err
	}
	defer restore()
	fmt.Fprint(out, enterScreen)
	defer fmt.Fprint(out, leaveScreen)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	w.view.Keys = " [q quit, s sort, t tree, e slow reclaims]"
	defer w.slow.close()

	if err := w.step(); err != nil {
		return err
	}
	w.draw(out)
	tick := time.NewTicker(w.view.Interval)
	defer tick.Stop()
	for frames := 0; w.count == 0 || frames < w.count; {
		select {
		case <-ctx.Done():
			return w.stopped(ctx)
		case k := <-keys:
			switch k {
			case 'q', 'Q', 3: // 3 is Ctrl-C in raw mode
				return nil
			case 's':
				w.view.Sort = w.view.Sort.Next()
			case 't':
				w.view.Tree = !w.view.Tree
			case 'e':
				w.slow.toggle()
			}
		case <-winch:
		case <-tick.C:
			if err := w.step(); err != nil {
				return err
			}
			frames++
		}
		w.draw(out)
	}
	return nil
}

// draw repaints the screen from the top, cut to the terminal's size.
func (w *watcher) draw(out *os.File) {
	w.view.Width, w.view.Height, _ = term.GetSize(int(out.Fd()))
	var slow []string
	if w.slow.shown() {
		slow = w.slow.lines()
		w.view.Height = max(w.view.Height-len(slow), 0)
	}
	fmt.Fprint(out, home)
	switch {
	case w.gone != "":
		fmt.Fprintf(out, "cgrstat watch: %s%s", w.gone, watch.RawEOL)
	case w.prev == nil:
		fmt.Fprintf(out, "cgrstat watch: first frame in %s%s", w.view.Interval, watch.RawEOL)
	default:
		_ = watch.Write(out, w.view, w.cur, w.rows, watch.RawEOL)
	}
	for _, l := range slow {
		if w.view.Width > 0 && utf8.RuneCountInString(l) > w.view.Width {
			l = string([]rune(l)[:w.view.Width])
		}
		fmt.Fprint(out, l, watch.RawEOL)
	}
	fmt.Fprint(out, clearBelow)
}

// rawKeys puts stdin in raw mode and delivers its bytes. Without a terminal
// on stdin there are no keys, and nothing to restore.
func rawKeys() (<-chan byte, func(), error) {
	keys := make(chan byte, 16)
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return keys, func() {}, nil
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, nil, fmt.Errorf("terminal raw mode: %w", err)
	}
	go func() {
		b := make([]byte, 16)
		for {
			n, err := os.Stdin.Read(b)
			if err != nil {
				return
			}
			for _, c := range b[:n] {
				keys <- c
			}
		}
	}()
	return keys, func() { _ = term.Restore(fd, old) }, nil
}
