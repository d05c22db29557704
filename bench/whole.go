package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// turns is how often each whole-tree read and each scrape of a tree of n
// cgroups is timed, in turns. On the host 11 times: with 3 turns at
// 10,000 cgroups, three quiet runs of the same code put the scrape at
// 0.92x, 1.11x and 1.50x the in-process read, and the CLI read at 35-47
// ms; a turn there costs under a second. In the emulated lab fewer, and
// fewer still for large trees, whose memory.stat walk takes long there.
func (b *bench) turns(n int) int {
	switch {
	case b.cfg.Turns > 0:
		return b.cfg.Turns
	case !b.cfg.Emulated:
		return 11
	case n >= 10000:
		return 3
	}
	return 5
}

// whole times `cgrstat read --all --json` of the tree (the binary, as a
// subprocess), the same in-process, and reading every memory.stat, in
// turns; then `cgrstat read` of one leaf.
func (b *bench) whole(s *session, t *tree) (Whole, error) {
	w := Whole{Mode: s.mode, N: t.n}
	err := timeTurns(b.turns(t.n),
		b.timedCLI(&w.CLINS, b.readAllArgs(t), func(out []byte) error { return checkReadAll(out, t) }),
		timedInProcess(&w.InProcessNS, s, t),
		timedWalk(&w.WalkNS, t))
	if err != nil {
		return w, err
	}
	leaf := t.leaves[0]
	readOne := []string{b.cfg.CLI, "--pin-path", b.pinPath, "read", leaf.Path}
	err = timeTurns(readOneReps, b.timedCLI(&w.ReadOneNS, readOne, func(out []byte) error { return checkReadOne(out, leaf) }))
	if err != nil {
		return w, err
	}
	chunks, err := mapMemory(loader.PinDir(b.pinPath).Map(bpf.CgrstatMapTreeChunks))
	if err != nil {
		return w, err
	}
	w.WalkMemlock = chunks.Memlock
	rss, err := peakRSS(b.readAllArgs(t)...)
	w.MaxRSSKiB = rss
	return w, err
}

// readOneReps is how often `cgrstat read CGROUP` is timed.
const readOneReps = 11

// timed is one thing whose time goes into sample: run is timed; check,
// of what run left, is not.
type timed struct {
	sample *[]int64
	run    func() error
	check  func() error
}

// timeTurns runs each of ts once per rep, in turn, so that a slow spell
// of the machine falls on all of them.
func timeTurns(reps int, ts ...timed) error {
	for i := 0; i < reps; i++ {
		for _, t := range ts {
			start := time.Now()
			err := t.run()
			ns := since(start)
			if err == nil {
				err = t.check()
			}
			if err != nil {
				return err
			}
			*t.sample = append(*t.sample, ns)
		}
	}
	return nil
}

// timedCLI runs the real binary; check gets what it printed.
func (b *bench) timedCLI(sample *[]int64, args []string, check func(stdout []byte) error) timed {
	var stdout, stderr bytes.Buffer
	return timed{sample: sample,
		run: func() error {
			stdout.Reset()
			stderr.Reset()
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s %s: %w: %s", filepath.Base(args[0]), strings.Join(args[3:], " "), err, bytes.TrimSpace(stderr.Bytes()))
			}
			return nil
		},
		check: func() error { return check(stdout.Bytes()) }}
}

// checkReadOne wants c's line. The table shortens a long path in its
// middle: its end is there.
func checkReadOne(stdout []byte, c cgroup.Cgroup) error {
	if !bytes.Contains(stdout, []byte("/"+filepath.Base(c.Rel)+" ")) {
		return fmt.Errorf("read %s printed %q", c.Rel, stdout)
	}
	return nil
}

func (b *bench) readAllArgs(t *tree) []string {
	return []string{b.cfg.CLI, "--pin-path", b.pinPath, "read", "--all", "--json", t.top.Path}
}

// checkReadAll wants every cgroup of the tree in read --all's JSON.
func checkReadAll(stdout []byte, t *tree) error {
	var out struct {
		Cgroups []reclaim.Stat `json:"cgroups"`
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		return fmt.Errorf("decoding read --all output: %w", err)
	}
	if err := checkAll(out.Cgroups, t); err != nil {
		return fmt.Errorf("read --all: %w", err)
	}
	return nil
}

// timedInProcess is the same read in-process, as JSON.
func timedInProcess(sample *[]int64, s *session, t *tree) timed {
	var stats *readout.Snapshot
	return timed{sample: sample,
		run: func() error {
			var err error
			stats, err = s.p.Snapshot(readout.Query{Cgroups: []cgroup.Cgroup{t.top}, All: true})
			if err == nil {
				err = format.JSON(io.Discard, stats)
			}
			if err != nil {
				return fmt.Errorf("reading the tree in-process: %w", err)
			}
			return nil
		},
		check: func() error { return checkAll(stats.Stats(), t) }}
}

// checkAll wants one line per cgroup of the tree, the top's with reclaims.
func checkAll(stats []reclaim.Stat, t *tree) error {
	if len(stats) != t.n {
		return fmt.Errorf("%d cgroups read, the tree has %d", len(stats), t.n)
	}
	if stats[0].Path != t.top.Rel || stats[0].Count == 0 {
		return fmt.Errorf("first line %+v: want the top %s with reclaims", stats[0], t.top.Rel)
	}
	return nil
}

// timedWalk reads memory.stat of every cgroup of the tree, as a tool
// without cgrstat would.
func timedWalk(sample *[]int64, t *tree) timed {
	n := 0
	return timed{sample: sample,
		run: func() error {
			n = 0
			err := cgroup.Walk(t.top, func(c cgroup.Cgroup) error {
				n++
				_, err := os.ReadFile(filepath.Join(c.Path, "memory.stat"))
				return err
			})
			if err != nil {
				return fmt.Errorf("walking memory.stat: %w", err)
			}
			return nil
		},
		check: func() error {
			if n != t.n {
				return fmt.Errorf("memory.stat walk visited %d cgroups, the tree has %d", n, t.n)
			}
			return nil
		}}
}
