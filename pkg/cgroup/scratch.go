package cgroup

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A scratch cgroup is a short-lived child that cgrstat creates below a cgroup
// it was given (stress runs its memory hog there on v1, so that it can lower
// a limit without touching the given cgroup's own settings). Its name says
// which process made it, by pid and start time, so that once that process is
// dead a later run can prove the cgroup is a leftover of cgrstat's and remove
// it; a trusted xattr repeats the claim.
const (
	scratchPrefix = "cgrstat-stress-"
	scratchXattr  = "trusted.cgrstat"
)

// Compiled on first use, as are selfStart and the regexps of pkg/spec:
// not at the start of every command (a read of one cgroup is a few ms).
var scratchRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^cgrstat-stress-([0-9]+)-([0-9]+)-([0-9]+)$`)
})

// ErrNotScratch says that a cgroup is not a scratch cgroup of cgrstat.
var ErrNotScratch = errors.New("not a scratch cgroup of cgrstat")

// selfStart is this process's start time in clock ticks since boot; with the
// pid it names a process uniquely until the next boot, which ends every
// cgroup anyway.
var selfStart = sync.OnceValue(func() uint64 { s, _ := startTime(os.Getpid()); return s })

// startTime reads field 22 of /proc/<pid>/stat.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: skip past its last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// alive reports whether the process pid that started at start still runs.
func alive(pid int, start uint64) bool {
	s, err := startTime(pid)
	return err == nil && s == start
}

// Owner names a process until the next boot: pid and start time.
type Owner string

// Self is this process as an Owner.
func Self() Owner { return Owner(fmt.Sprintf("%d-%d", os.Getpid(), selfStart())) }

// Kept owns what cgrstat made to keep (hierarchy create's trees): no process
// owns it, so no process's death makes it a leftover, but its mark still
// proves that cgrstat made it, which is what hierarchy destroy asks.
const Kept Owner = "cgrstat"

// process returns the pid and start time o names; ok is false for Kept and
// for a malformed Owner.
func (o Owner) process() (pid int, start uint64, ok bool) {
	n, err := fmt.Sscanf(string(o), "%d-%d", &pid, &start)
	return pid, start, n == 2 && err == nil
}

// Running returns the pid of the process o names if it still runs.
func (o Owner) Running() (int, bool) {
	pid, start, ok := o.process()
	return pid, ok && alive(pid, start)
}

// Dead reports whether o names a process that no longer runs; a malformed
// Owner is never dead, so nothing is removed on its word.
func (o Owner) Dead() bool {
	pid, start, ok := o.process()
	return ok && !alive(pid, start)
}

// Mark records o as the maker of c in a trusted xattr.
func (c Cgroup) Mark(o Owner) error {
	if err := unix.Setxattr(c.Path, scratchXattr, []byte("made by "+string(o)), 0); err != nil {
		return fmt.Errorf("marking cgroup %s: %w", c.Rel, err)
	}
	return nil
}

// MadeBy returns the Owner c's mark names, if any.
func (c Cgroup) MadeBy() (Owner, bool) {
	buf := make([]byte, 256)
	n, err := unix.Getxattr(c.Path, scratchXattr, buf)
	if err != nil {
		return "", false
	}
	o, ok := strings.CutPrefix(string(buf[:n]), "made by ")
	return Owner(o), ok
}

// NewScratch creates a scratch cgroup below parent, the n-th of this process.
func NewScratch(parent Cgroup, n int) (Cgroup, error) {
	c := parent.Child(fmt.Sprintf("%s%d-%d-%d", scratchPrefix, os.Getpid(), selfStart(), n))
	if err := c.Mkdir(); err != nil {
		return Cgroup{}, err
	}
	if err := unix.Setxattr(c.Path, scratchXattr, []byte(scratchClaim(c)), 0); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		_ = c.Remove()
		return Cgroup{}, fmt.Errorf("marking cgroup %s: %w", c.Rel, err)
	}
	return c, nil
}

func scratchClaim(c Cgroup) string { return "scratch " + c.Path[strings.LastIndexByte(c.Path, '/')+1:] }

// IsScratchName reports whether name looks like a scratch cgroup's; only
// RemoveStaleScratch decides whether one is a leftover.
func IsScratchName(name string) bool { return scratchRE().MatchString(name) }

// staleScratch checks that c is a scratch cgroup whose creator is dead.
func staleScratch(c Cgroup, name string) error {
	m := scratchRE().FindStringSubmatch(name)
	if m == nil {
		return ErrNotScratch
	}
	pid, _ := strconv.Atoi(m[1])
	start, _ := strconv.ParseUint(m[2], 10, 64)
	buf := make([]byte, 256)
	n, err := unix.Getxattr(c.Path, scratchXattr, buf)
	switch {
	case err == nil && string(buf[:n]) != scratchClaim(c):
		return fmt.Errorf("cgroup %s: %w (its mark says %q)", c.Rel, ErrNotScratch, buf[:n])
	case err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("cgroup %s: reading its mark: %w", c.Rel, err)
	}
	if alive(pid, start) {
		return fmt.Errorf("cgroup %s: its cgrstat (pid %d) still runs", c.Rel, pid)
	}
	return nil
}

// RemoveStaleScratch removes the scratch cgroups below parent that a dead
// cgrstat left, and returns their paths. A process still in one is that
// cgrstat's stress child and is killed; a scratch cgroup with children is
// left (rmdir refuses it) and reported.
func RemoveStaleScratch(parent Cgroup) ([]string, error) {
	names, err := parent.Children()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, name := range names {
		c := parent.Child(name)
		if !IsScratchName(name) || staleScratch(c, name) != nil {
			continue
		}
		// What runs there is the dead stress's own child, which its death
		// signal may not have ended yet (it can sit in reclaim a while).
		if err := c.killEach(); err != nil {
			return removed, err
		}
		if err := c.RemoveWait(5 * time.Second); err != nil {
			return removed, err
		}
		removed = append(removed, c.Rel)
	}
	return removed, nil
}

// RemoveWait removes the empty cgroup c, waiting up to timeout while a
// process that just died still counts as in it (EBUSY).
func (c Cgroup) RemoveWait(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Rmdir(c.Path)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("removing cgroup %s: %w", c.Rel, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MkdirMarked creates c marked as made by o (see Mark), leaving a note (see
// Intend) for as long as c exists unmarked.
func (c Cgroup) MkdirMarked(o Owner) error {
	done, err := Intend("mkdir", c.Path)
	if err != nil {
		return err
	}
	defer done()
	if err := c.Mkdir(); err != nil {
		return err
	}
	if err := c.Mark(o); err != nil {
		_ = c.Remove()
		return err
	}
	return nil
}

// RemoveInterrupted removes the cgroups whose MkdirMarked a dead process did
// not finish: still unmarked, and empty (rmdir refuses anything else). It
// returns their paths.
func RemoveInterrupted() ([]string, error) {
	notes, err := InterruptedNotes("mkdir")
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, note := range notes {
		path := note.Lines[0]
		c := Cgroup{Rel: path, Path: path}
		if _, marked := c.MadeBy(); c.Exists() && !marked {
			if err := c.RemoveWait(time.Second); err != nil {
				return removed, err
			}
			removed = append(removed, c.Path)
		}
		note.Drop()
	}
	return removed, nil
}
