package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// The plain workload, the one the plain bpf_stats measurement
// used: one task in a leaf reads a 64 MiB file from disk into the leaf's
// page cache, then drops the leaf's limit to 8 MiB (v2: asks
// memory.reclaim for the difference), and the kernel reclaims in that
// write, about 40 events back to back. Between two events there is only
// reclaim.
const (
	plainFileSize = 64 << 20
	plainLimit    = 8 << 20
)

// readEnv makes the bench binary a reader child: it joins the cgroup
// directory the variable names, reads the file its argument names and
// lowers the cgroup's limit, so that the task that stalls is in the cgroup
// it reclaims, as in a reclaim at a charge.
const readEnv = "CGRSTAT_BENCH_READ"

// readMain is the reader child. "0" moves the writing process: it needs no
// pid of its own, and on cgroup v1 there is no way to start a process
// inside a cgroup.
func readMain() int {
	version, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if len(os.Args) != 3 || err != nil {
		fmt.Fprintln(os.Stderr, "reader: want a file and the cgroup version")
		return 2
	}
	c := cgroup.Cgroup{Rel: os.Getenv(readEnv), Path: os.Getenv(readEnv)}
	if err := c.Write("cgroup.procs", "0"); err != nil {
		fmt.Fprintln(os.Stderr, "reader:", err)
		return 1
	}
	f, err := os.Open(os.Args[1])
	if err == nil {
		_, err = io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
		f.Close()
	}
	if err == nil {
		err = lowerLimit(c, version)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reader:", err)
		return 1
	}
	return 0
}

// plainFile writes the file the reader reads, on the scratch directory's
// file system (a disk: tmpfs pages cannot be reclaimed without swap),
// synced and dropped from the page cache.
func plainFile(dir string) (string, error) {
	f, err := os.CreateTemp(dir, "cgrstat-bench-plain-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	err = stress.WritePattern(f, plainFileSize)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = dropCache(f.Name())
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing the plain workload's file: %w", err)
	}
	return f.Name(), nil
}

// dropCache drops a file's clean pages from the page cache, whichever
// cgroup they are charged to.
func dropCache(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// lowerLimit makes the kernel reclaim c down to about plainLimit: on v1 by
// lowering its limit (EBUSY: it reclaimed less than asked, but it ran);
// on v2 through memory.reclaim (EAGAIN likewise), since a memory.max below
// what cannot be reclaimed (the child's own memory, with no swap) would
// OOM-kill the child.
func lowerLimit(c cgroup.Cgroup, version int) error {
	var err error
	if version == 1 {
		h := cgroup.Hierarchy{Version: version}
		err = h.SetLimits(c, cgroup.Limits{Max: plainLimit})
	} else {
		err = c.Write("memory.reclaim", strconv.Itoa(plainFileSize-plainLimit))
	}
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EAGAIN) {
		return nil
	}
	return err
}

// plainRun is one run of the plain workload in leaf, a cgroup of the
// bench's own tree (so it may set its limit): the limit is lifted, and a
// reader child fills the page cache and lowers the limit.
func (b *bench) plainRun(ctx context.Context, leaf cgroup.Cgroup, file string) error {
	if err := dropCache(file); err != nil {
		return err
	}
	if err := b.h.SetLimits(leaf, cgroup.Limits{Max: -1}); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, file, strconv.Itoa(b.h.Version))
	cmd.Env = append(os.Environ(), readEnv+"="+leaf.Path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("reading %s in %s: %w: %s", filepath.Base(file), leaf.Rel, err, out)
	}
	return dropCache(file)
}
