package format

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/cgrstat/cgrstat/pkg/loader"
)

// StatusJSON writes the status as one JSON object.
func StatusJSON(w io.Writer, st *loader.Status) error {
	if st.StatFiles == nil { // [] rather than null, for scripts
		cp := *st
		cp.StatFiles = []string{}
		st = &cp
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

// StatusText writes the status for people.
func StatusText(w io.Writer, st *loader.Status) error {
	fmt.Fprintf(w, "kernel:      %s\n", st.Kernel)
	if !st.Loaded {
		_, err := fmt.Fprintf(w, "loaded:      no (pin path %s)\n", st.PinPath)
		return err
	}
	r, u := st.Record, st.Usage
	fmt.Fprintf(w, "loaded:      yes, at %s since %s\n", st.PinPath, r.LoadedAt.Format("2006-01-02 15:04:05 MST"))
	if r.Version != "" {
		fmt.Fprintf(w, "loaded by:   cgrstat %s\n", r.Version)
	}
	fmt.Fprintf(w, "flush mode:  %s\n", r.Flush)
	for _, ref := range r.Refused {
		fmt.Fprintf(w, "  not %s: %s\n", ref.Mode, ref.Reason)
	}
	if r.Flush == loader.Walk {
		fmt.Fprintln(w, "  cost: a read flushes every cgroup of its subtree on every CPU, O(subtree x CPUs),")
		fmt.Fprintln(w, "  holding the kernel's cgroup_mutex (mkdir, rmdir and task moves wait meanwhile)")
	}
	fmt.Fprintf(w, "rstat:       %s\n", r.RstatKfuncs)
	fmt.Fprintf(w, "cgroups:     v%d at %s\n", r.CgroupVersion, r.CgroupRoot)
	fmt.Fprintf(w, "maps:        totals %d/%d, per-CPU %d/%d\n", u.Totals.Entries, u.Totals.MaxEntries, u.Pcpu.Entries, u.Pcpu.MaxEntries)
	fmt.Fprintf(w, "lost:        events %d, flushes %d, parent deltas %d, rstat marks %d\n",
		u.Lost.Events, u.Lost.Flushes, u.Lost.ParentDeltas, u.Lost.RstatMarks)
	fmt.Fprintf(w, "stat files:  %d\n", len(st.StatFiles))
	for _, f := range st.StatFiles {
		fmt.Fprintf(w, "  %s\n", f)
	}
	return nil
}
