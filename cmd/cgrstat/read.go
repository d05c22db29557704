package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

func newReadCmd(g *globals) *cobra.Command {
	var all, asJSON, hist bool
	var match string
	cmd := &cobra.Command{
		Use:   "read [CGROUP...]",
		Short: "Flush and print the hierarchical reclaim stats of cgroups",
		Long: `Flush and print each CGROUP's hierarchical total (every CPU, every descendant).
Without CGROUP, the cgroups that have stat files are read (those whose cgroup
was removed are skipped, with a note); with --all, every cgroup below the root
(or below each CGROUP) is, from one consistent copy of the maps.

The table's RECLAIMS, DELAY, PAGES, P99 and MAX are memory-cgroup reclaim
(P50 and P90 are in --json and --hist); MEM.MAX (reclaim at charge time against
memory.max, on cgroup v1 the limit: the task waits for it before it gets its
memory), MEM.HIGH (reclaim after a charge went over memory.high, on the way
back to user space) and PROACTIVE (memory.reclaim) split DELAY by cause;
DIRECT is global direct reclaim, not in DELAY; THROT is how long the kernel
made the cgroup's tasks sleep as a penalty for staying above memory.high
after reclaim, not in DELAY either (n/a where the kernel refuses the
fentry/fexit that measure it); FORCED is the memory-cgroup reclaim that
the limits of the cgroup's subtree made tasks stall in, wherever they ran.
--json also gives oom_kills: the tasks of the cgroup or below that the OOM
killer chose since the collectors were loaded (cgroup v1 too), throttle:
those penalty sleeps' time, count and buckets by length ("unavailable"
where not measured), and causes.limit, max + high, for scripts written
before they were told apart.
--hist draws each cgroup's latency distribution instead, and its throttle's.

A pod or container is named by its pod UID and container ID in the table
("pod 0b3c9a5e · containerd 3f9c2a1b"), and --json adds what its path tells
(kind, pod_uid, qos, container_id, runtime, unit, user) as "identity".
--match selects by path or by identity: --all --match pod=0b3c9a5e.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			collectLate()
			filter, err := matchFilter(-1, match)
			if err != nil {
				return err
			}
			p, err := g.open()
			if err != nil {
				return err
			}
			defer p.Close()
			var stale []string
			if len(args) == 0 {
				if args, stale, err = defaultReadArgs(p, all); err != nil {
					return err
				}
			}
			_, cgs, err := g.cgroups(args)
			if err != nil {
				return err
			}
			snap, err := p.Snapshot(readout.Query{Cgroups: cgs, All: all, Filter: &filter})
			if err != nil {
				return err
			}
			snap.Health.Stale = stale
			warn(cmd.ErrOrStderr(), p, &snap.Health)
			switch {
			case asJSON:
				return format.JSON(cmd.OutOrStdout(), snap)
			case hist:
				return histograms(cmd.OutOrStdout(), snap.Rows)
			}
			return format.Table(cmd.OutOrStdout(), snap.Rows)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every cgroup below the root, or below each CGROUP")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&hist, "hist", false, "draw each cgroup's reclaim latency histogram")
	registerMatch(cmd, &match)
	cmd.MarkFlagsMutuallyExclusive("json", "hist")
	return cmd
}

// readHeapLimit is where a read starts collecting garbage: a read --all
// allocates about 1.5 KB per cgroup (15 MB at 10,000), nearly all of it
// live until it prints, so the collector's default (a cycle each time the
// heap doubles) only burnt CPU: half of read --all's at 10,000 cgroups (53
// ms of CPU, 28 without it, loaded machine). Past the limit the collector
// runs as it must; the kernel holds up to 65,535 memory cgroups.
const readHeapLimit = 256 << 20

// collectLate turns the collector off below readHeapLimit, for a command
// that reads once and exits, unless GOGC or GOMEMLIMIT says otherwise.
func collectLate() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(readHeapLimit)
}

// histograms draws one histogram per cgroup, a blank line between them.
func histograms(w io.Writer, rows []readout.Row) error {
	for i := range rows {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := format.Hist(w, rows[i].Stat); err != nil {
			return err
		}
	}
	return nil
}

// defaultReadArgs is what read covers without CGROUP arguments: the
// cgroups with stat files, but for those removed since, returned apart.
func defaultReadArgs(p *readout.Handle, all bool) (args, stale []string, err error) {
	if all {
		return []string{"/"}, nil, nil
	}
	rels, err := p.Dir.StatFileCgroups()
	if err != nil {
		return nil, nil, err
	}
	for _, rel := range rels {
		if p.Dir.Stale(rel, p.Record.CgroupRoot) {
			stale = append(stale, rel)
		} else {
			args = append(args, rel)
		}
	}
	if len(args) == 0 && len(stale) == 0 {
		return nil, nil, usage(errors.New("no stat files are pinned: give CGROUP arguments or --all"))
	}
	if len(args) == 0 {
		return nil, nil, usage(fmt.Errorf("every pinned cgroup was removed (%d stale stat files; cgrstat unpin them): give CGROUP arguments or --all", len(stale)))
	}
	return args, stale, nil
}

// warn says on stderr what the numbers do not cover.
func warn(w io.Writer, p *readout.Handle, n *readout.Health) {
	for _, rel := range n.Stale {
		rel := escape.String(rel)
		fmt.Fprintf(w, "cgrstat: note: skipped %s: the cgroup was removed (stale stat file; cgrstat unpin %s)\n", rel, rel)
	}
	if l := n.Lost; l.Events > 0 || l.RemovedDeltas > 0 {
		fmt.Fprintf(w, "cgrstat: warning: the map of %d cgroups was full: %d reclaims and %d removed cgroups' deltas were not recorded; the numbers are lower bounds (cgrstat status; unload and load with a larger --max-cgroups)\n",
			p.Record.MaxCgroups, l.Events, l.RemovedDeltas)
	} else if l.TaskStorage > 0 {
		fmt.Fprintf(w, "cgrstat: warning: %d reclaims were not recorded: the kernel's per-task storage had no room or was busy (kernel 6.1); the numbers are lower bounds (cgrstat status)\n",
			l.TaskStorage)
	} else if l != (readout.Lost{}) {
		fmt.Fprintf(w, "cgrstat: warning: stat files may lag: %d deltas waited for room in the map, %d updates were not marked in rstat (cgrstat status)\n",
			l.WaitedDeltas, l.RstatMarks)
	}
}
