package format

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// StatusJSON writes the status as one JSON object.
func StatusJSON(w io.Writer, st *readout.Status) error {
	if st.StatFiles == nil || st.Stale == nil || st.Subscribers == nil { // [] rather than null, for scripts
		cp := *st
		if cp.StatFiles == nil {
			cp.StatFiles = []string{}
		}
		if cp.Stale == nil {
			cp.Stale = []string{}
		}
		if cp.Subscribers == nil {
			cp.Subscribers = []readout.Subscriber{}
		}
		st = &cp
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

// Bytes prints a byte count in the largest binary unit that keeps it readable.
func Bytes(n uint64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// StatusText writes the status for people.
func StatusText(w io.Writer, st *readout.Status) error {
	fmt.Fprintf(w, "kernel:      %s\n", st.Kernel)
	if !st.Loaded {
		_, err := fmt.Fprintf(w, "loaded:      no (pin path %s)\n", escape.String(st.PinPath))
		return err
	}
	r, u := st.Record, st.Health
	fmt.Fprintf(w, "loaded:      yes, at %s since %s\n", escape.String(st.PinPath), r.LoadedAt.Format("2006-01-02 15:04:05 MST"))
	if r.Version != "" {
		fmt.Fprintf(w, "loaded by:   cgrstat %s\n", r.Version)
	}
	fmt.Fprintf(w, "flush mode:  %s\n", r.Flush)
	for _, ref := range r.Refused {
		fmt.Fprintf(w, "  not %s: %s\n", ref.Mode, ref.Reason)
	}
	if u.WalkHoldsCgroupMutex {
		fmt.Fprintln(w, "  cost: a read of a stat file visits every cgroup of its subtree (one lookup each, more only")
		fmt.Fprintln(w, "  where there is new data), holding the kernel's cgroup_mutex: mkdir, rmdir and task moves wait")
	}
	fmt.Fprintf(w, "rstat:       %s\n", r.RstatKfuncs)
	fmt.Fprintf(w, "throttle:    %s\n", ThrottleState(r))
	fmt.Fprintf(w, "cgroups:     v%d at %s\n", r.CgroupVersion, escape.String(r.CgroupRoot))
	m := u.Memory
	fmt.Fprintf(w, "maps:        %d of %d cgroups tracked, %d throttled; %s in use (%s preallocated + %s per tracked cgroup + %s per throttled one), at most %s\n",
		u.Stats.Entries, u.Stats.MaxEntries, u.Throttles.Entries, Bytes(m.Used), Bytes(m.Preallocated), Bytes(m.PerCgroup), Bytes(m.PerThrottled), Bytes(m.AtMost))
	fmt.Fprintf(w, "lost:        events %d, task storage %d, rstat marks %d, removed deltas %d (and %d deltas waited for room)\n",
		u.Lost.Events, u.Lost.TaskStorage, u.Lost.RstatMarks, u.Lost.RemovedDeltas, u.Lost.WaitedDeltas)
	if u.Lost.Events > 0 {
		fmt.Fprintf(w, "  the map was full: load with a larger --max-cgroups (after cgrstat unload)\n")
	}
	fmt.Fprintf(w, "stat files:  %d\n", len(st.StatFiles))
	stale := map[string]bool{}
	for _, f := range st.Stale {
		stale[f] = true
	}
	for _, f := range st.StatFiles {
		if e := escape.String(f); stale[f] {
			fmt.Fprintf(w, "  %s (stale: the cgroup was removed; cgrstat unpin %s)\n", e, e)
		} else {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintf(w, "subscribers: %d of the event stream\n", len(st.Subscribers))
	for _, s := range st.Subscribers {
		who := fmt.Sprintf("pid %d (%s)", s.PID, escape.String(s.Command))
		if s.Gone {
			who = fmt.Sprintf("pid %d, gone (killed without closing: the next subscriber takes the slot back)", s.PID)
		}
		where := "every cgroup"
		if s.Cgroups > 0 {
			where = fmt.Sprintf("the subtrees of %d cgroups", s.Cgroups)
		}
		fmt.Fprintf(w, "  slot %d: %s; reclaims of %s and longer in %s; %d sent, %d dropped (rate limit %d, ring buffer full %d)\n",
			s.Slot, who, Latency(s.MinNS), where, s.Events.Sent, s.Events.Dropped(), s.Events.RateLimit, s.Events.RingFull)
	}
	return nil
}

// ThrottleState says whether a load measures the throttle after
// memory.high, and why not where it does not.
func ThrottleState(r *loader.Record) string {
	if r.Throttle {
		return "measured (fentry/fexit on mem_cgroup_handle_over_high)"
	}
	return "unavailable: " + r.ThrottleRefused
}
