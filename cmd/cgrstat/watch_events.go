package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// recentMax is how many slow reclaims watch shows below its frame.
const recentMax = 5

// recentRate bounds the events watch subscribes to: it shows a handful.
const recentRate = 100

// recentEvents are the latest slow reclaims under watch's tree, shown
// while toggled on (the e key). watch subscribes only while they are
// shown: otherwise it costs the collectors nothing.
type recentEvents struct {
	pinPath string
	opts    events.Options
	where   string // the watched cgroup, for the panel's title
	h       *cgroup.Hierarchy

	mu   sync.Mutex
	r    *readout.EventReader
	done chan struct{}
	last []format.Event // oldest first
	err  error
}

func newRecentEvents(pinPath string, h *cgroup.Hierarchy, c cgroup.Cgroup, slow time.Duration) (*recentEvents, error) {
	e := &recentEvents{pinPath: pinPath, h: h, where: c.Rel, opts: events.Options{Min: slow, RateLimit: recentRate}}
	if c.Rel != "/" {
		id, err := cgroup.ID(c)
		if err != nil {
			return nil, err
		}
		e.opts.Cgroups = []uint64{id}
	}
	return e, nil
}

// shown reports whether the panel is on.
func (e *recentEvents) shown() bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.r != nil || e.err != nil
}

// toggle subscribes and shows the panel, or unsubscribes and hides it.
func (e *recentEvents) toggle() {
	if e.shown() {
		e.close()
		return
	}
	r, err := readout.OpenEvents(e.pinPath, e.opts)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.r, e.err, e.last = r, err, nil
	if err != nil {
		return
	}
	e.done = make(chan struct{})
	go e.read(r, e.done)
}

// read keeps the latest events until the reader closes.
func (e *recentEvents) read(r *readout.EventReader, done chan struct{}) {
	defer close(done)
	paths := e.h.Paths()
	for {
		ev, err := r.Read()
		if errors.Is(err, events.ErrClosed) {
			return
		}
		if err != nil {
			e.mu.Lock()
			e.err = err
			e.mu.Unlock()
			return
		}
		fe := format.Event{Event: ev}
		fe.CgroupPath, _ = paths.Path(ev.Cgroup, ev.PID)
		if ev.Target != 0 {
			fe.TargetPath, _ = paths.Path(ev.Target, ev.PID)
		}
		e.mu.Lock()
		e.last = append(e.last, fe)
		if len(e.last) > recentMax {
			e.last = e.last[len(e.last)-recentMax:]
		}
		e.mu.Unlock()
	}
}

// close unsubscribes and hides the panel.
func (e *recentEvents) close() {
	if e == nil {
		return
	}
	e.mu.Lock()
	r, done := e.r, e.done
	e.r, e.err, e.last, e.done = nil, nil, nil, nil
	e.mu.Unlock()
	if r != nil {
		r.Close()
		<-done
	}
}

// lines are the panel: a title, then the events, newest first.
func (e *recentEvents) lines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	title := fmt.Sprintf("slow reclaims (%s and longer) under %s, newest first [e hides]", e.opts.Min, escape.String(e.where))
	if e.err != nil {
		return []string{title, "  " + escape.String(e.err.Error())}
	}
	out := []string{title}
	if len(e.last) == 0 {
		out = append(out, "  none yet")
	}
	for i := len(e.last) - 1; i >= 0; i-- {
		var b bytes.Buffer
		_ = format.EventText(&b, e.last[i])
		out = append(out, "  "+strings.TrimSuffix(b.String(), "\n"))
	}
	return out
}

// recentEvents are the slow reclaims under watch's CGROUP (the root without one).
func (g *globals) recentEvents(args []string, slow time.Duration) (*recentEvents, error) {
	if len(args) == 0 {
		args = []string{"/"}
	}
	h, cgs, err := g.cgroups(args)
	if err != nil {
		return nil, err
	}
	return newRecentEvents(g.pinPath, h, cgs[0], slow)
}
