package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// wholeReps is how often each whole-tree read is timed: fewer for large
// trees, whose memory.stat walk takes long under emulation.
func wholeReps(n int) int {
	if n >= 10000 {
		return 3
	}
	return 5
}

// whole times `cgrstat read --all --json` of the tree (the binary, as a
// subprocess), the same in-process, and reading every memory.stat.
func (b *bench) whole(s *session, t *tree) (Whole, error) {
	w := Whole{Mode: s.mode, N: t.n}
	for i := 0; i < wholeReps(t.n); i++ {
		ns, err := b.readAllCLI(t)
		if err != nil {
			return w, err
		}
		w.CLINS = append(w.CLINS, ns)
		if ns, err = readAllInProcess(s, t); err != nil {
			return w, err
		}
		w.InProcessNS = append(w.InProcessNS, ns)
		if ns, err = walkMemoryStat(t); err != nil {
			return w, err
		}
		w.WalkNS = append(w.WalkNS, ns)
	}
	for i := 0; i < readOneReps; i++ {
		ns, err := b.readOneCLI(t.leaves[0])
		if err != nil {
			return w, err
		}
		w.ReadOneNS = append(w.ReadOneNS, ns)
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

// readOneCLI runs `cgrstat read CGROUP` of c and checks that it printed
// c's line.
func (b *bench) readOneCLI(c cgroup.Cgroup) (int64, error) {
	cmd := exec.Command(b.cfg.CLI, "--pin-path", b.pinPath, "read", c.Path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	ns := since(start)
	if err != nil {
		return 0, fmt.Errorf("%s read %s: %w: %s", filepath.Base(b.cfg.CLI), c.Rel, err, bytes.TrimSpace(stderr.Bytes()))
	}
	// The table shortens a long path in its middle: its end is there.
	if !bytes.Contains(stdout.Bytes(), []byte("/"+filepath.Base(c.Rel)+" ")) {
		return 0, fmt.Errorf("read %s printed %q", c.Rel, stdout.Bytes())
	}
	return ns, nil
}

func (b *bench) readAllArgs(t *tree) []string {
	return []string{b.cfg.CLI, "--pin-path", b.pinPath, "read", "--all", "--json", t.top.Path}
}

// readAllCLI runs the real binary and checks that it printed every cgroup.
func (b *bench) readAllCLI(t *tree) (int64, error) {
	args := b.readAllArgs(t)
	cmd := exec.Command(args[0], args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	ns := since(start)
	if err != nil {
		return 0, fmt.Errorf("%s read --all: %w: %s", filepath.Base(b.cfg.CLI), err, bytes.TrimSpace(stderr.Bytes()))
	}
	var out struct {
		Cgroups []reclaim.Stat `json:"cgroups"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return 0, fmt.Errorf("decoding read --all output: %w", err)
	}
	if err := checkAll(out.Cgroups, t); err != nil {
		return 0, fmt.Errorf("read --all: %w", err)
	}
	return ns, nil
}

func readAllInProcess(s *session, t *tree) (int64, error) {
	start := time.Now()
	stats, err := s.p.Snapshot(readout.Query{Cgroups: []cgroup.Cgroup{t.top}, All: true})
	if err == nil {
		err = format.JSON(io.Discard, stats)
	}
	ns := since(start)
	if err != nil {
		return 0, fmt.Errorf("reading the tree in-process: %w", err)
	}
	return ns, checkAll(stats.Stats(), t)
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

// walkMemoryStat reads memory.stat of every cgroup of the tree, as a tool
// without cgrstat would.
func walkMemoryStat(t *tree) (int64, error) {
	n := 0
	start := time.Now()
	err := cgroup.Walk(t.top, func(c cgroup.Cgroup) error {
		n++
		_, err := os.ReadFile(filepath.Join(c.Path, "memory.stat"))
		return err
	})
	ns := since(start)
	if err != nil {
		return 0, fmt.Errorf("walking memory.stat: %w", err)
	}
	if n != t.n {
		return 0, fmt.Errorf("memory.stat walk visited %d cgroups, the tree has %d", n, t.n)
	}
	return ns, nil
}
