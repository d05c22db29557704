package stress

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// ChildReport is what a child prints on stdout for its parent.
type ChildReport struct {
	// Triggers counts writes that asked the kernel to reclaim.
	Triggers int `json:"triggers"`
	// Refused counts triggers the kernel answered with EAGAIN or EBUSY:
	// it reclaimed less than asked (no swap for anonymous or shmem pages),
	// but the reclaim ran.
	Refused int `json:"refused"`
}

// Child is the body of the hidden child command: it joins the cgroup at
// path, then for each round fills size bytes of page cache in scratchDir
// and asks the kernel to reclaim them. On v1 path must be a scratch cgroup
// (cgroup.NewScratch): the only cgroup whose limit stress may lower.
func Child(path string, size int64, rounds, version int, scratchDir string) (ChildReport, error) {
	var rep ChildReport
	c := cgroup.Cgroup{Rel: path, Path: path}
	if version == 1 && !cgroup.IsScratchName(filepath.Base(path)) {
		return rep, fmt.Errorf("cgroup %s: %w: stress lowers limits only in its own scratch cgroups", path, cgroup.ErrNotScratch)
	}
	// "0" moves the writing process; the child starts in its parent's cgroup.
	if err := c.Write("cgroup.procs", "0"); err != nil {
		return rep, err
	}
	for i := 0; i < rounds; i++ {
		if err := round(c, size, version, scratchDir, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func round(c cgroup.Cgroup, size int64, version int, scratchDir string, rep *ChildReport) error {
	f, err := fill(scratchDir, size)
	if err != nil {
		return err
	}
	defer f.Close()
	trigger := triggerV2
	if version == 1 {
		trigger = triggerV1
	}
	refused, err := trigger(c, size)
	rep.Triggers++
	if refused {
		rep.Refused++
	}
	return err
}

// fill writes size bytes to an unlinked file and syncs it, so that the
// pages are clean page cache charged to this cgroup, which reclaim can drop.
func fill(dir string, size int64) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating scratch file in %s: %w", dir, err)
	}
	if err := WritePattern(f, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("filling scratch file: %w", err)
	}
	if err := f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		f.Close()
		return nil, fmt.Errorf("syncing scratch file: %w", err)
	}
	return f, nil
}

// WritePattern writes size bytes of a fixed, non-zero pattern to w, a
// megabyte at a time: page cache for reclaim to take (stress's children,
// the bench's plain workload, the kernel tests' writers). Not zeros, which
// a file system could keep as holes.
func WritePattern(w io.Writer, size int64) error {
	buf := make([]byte, min(size, 1<<20))
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	for left := size; left > 0; left -= int64(len(buf)) {
		if _, err := w.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return err
		}
	}
	return nil
}

// triggerV2 asks for size bytes through memory.reclaim.
func triggerV2(c cgroup.Cgroup, size int64) (bool, error) {
	return refusedOK(c.Write("memory.reclaim", strconv.FormatInt(size, 10)))
}

// triggerV1 has no memory.reclaim: it lowers the limit of the scratch
// cgroup below the usage, which makes the kernel reclaim down to it, and
// then restores the limit for the next round.
func triggerV1(c cgroup.Cgroup, size int64) (bool, error) {
	old, err := c.Read("memory.limit_in_bytes")
	if err != nil {
		return false, err
	}
	usage, err := c.Read("memory.usage_in_bytes")
	if err != nil {
		return false, err
	}
	u, err := strconv.ParseInt(usage, 10, 64)
	if err != nil {
		return false, fmt.Errorf("cgroup %s: memory.usage_in_bytes: %w", c.Rel, err)
	}
	// Half of the file: enough to reclaim, never so low that the child's
	// own memory would have to go.
	target := max(u-size/2, 1<<20)
	refused, err := refusedOK(c.Write("memory.limit_in_bytes", strconv.FormatInt(target, 10)))
	if rerr := c.Write("memory.limit_in_bytes", old); err == nil {
		err = rerr
	}
	return refused, err
}

// refusedOK treats EAGAIN and EBUSY as a reclaim that ran but fell short.
func refusedOK(err error) (bool, error) {
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EBUSY) {
		return true, nil
	}
	return false, err
}
