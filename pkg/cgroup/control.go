package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Limits are the memory settings of one cgroup, in bytes; 0 leaves a
// setting alone and -1 means unlimited.
type Limits struct {
	Max, High int64
}

// Write writes value to the control file name of c.
//
// It uses plain system calls: os.File would register the pollable kernfs
// file with Go's poller, and then read memory.reclaim's EAGAIN ("reclaimed
// less than asked") as "try again later" and wait forever.
func (c Cgroup) Write(name, value string) error {
	err := writeFile(filepath.Join(c.Path, name), value)
	if err != nil {
		return fmt.Errorf("cgroup %s: writing %q to %s: %w", c.Rel, value, name, err)
	}
	return nil
}

func writeFile(path, value string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, []byte(value))
		if err != unix.EINTR {
			return err
		}
	}
}

// Read returns the trimmed content of the control file name of c.
func (c Cgroup) Read(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(c.Path, name))
	if err != nil {
		return "", fmt.Errorf("cgroup %s: reading %s: %w", c.Rel, name, unwrapPath(err))
	}
	return strings.TrimSpace(string(b)), nil
}

// unwrapPath drops the *PathError wrapper, whose path the message already names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// EnableMemory enables the memory controller for c's children. On v1 every
// cgroup of the hierarchy has it already.
func (h *Hierarchy) EnableMemory(c Cgroup) (changed bool, err error) {
	if h.Version == 1 {
		return false, nil
	}
	cur, err := c.Read("cgroup.subtree_control")
	if err != nil {
		return false, err
	}
	if contains(strings.Fields(cur), "memory") {
		return false, nil
	}
	return true, c.Write("cgroup.subtree_control", "+memory")
}

// DisableMemory undoes EnableMemory.
func (h *Hierarchy) DisableMemory(c Cgroup) error {
	return c.Write("cgroup.subtree_control", "-memory")
}

// SetLimits applies memory settings: memory.max and memory.high on v2,
// memory.limit_in_bytes on v1, which has no counterpart of memory.high.
func (h *Hierarchy) SetLimits(c Cgroup, l Limits) error {
	if h.Version == 1 {
		if l.High != 0 {
			return fmt.Errorf("cgroup %s: memory high needs cgroup v2 (v1 has only limit)", c.Rel)
		}
		return setLimit(c, "memory.limit_in_bytes", l.Max)
	}
	if err := setLimit(c, "memory.max", l.Max); err != nil {
		return err
	}
	return setLimit(c, "memory.high", l.High)
}

func setLimit(c Cgroup, file string, v int64) error {
	switch {
	case v == 0:
		return nil
	case v < 0 && file == "memory.limit_in_bytes":
		return c.Write(file, "-1")
	case v < 0:
		return c.Write(file, "max")
	}
	return c.Write(file, strconv.FormatInt(v, 10))
}

// Procs lists the processes in c.
func (c Cgroup) Procs() ([]int, error) {
	s, err := c.Read("cgroup.procs")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Kill kills every process in c and waits until c is empty, through
// cgroup.kill where the kernel has it (v2, 5.14+).
func (c Cgroup) Kill() error {
	if err := c.Write("cgroup.kill", "1"); err != nil {
		if err := c.killEach(); err != nil {
			return err
		}
	}
	return c.waitEmpty(5 * time.Second)
}

func (c Cgroup) killEach() error {
	pids, err := c.Procs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("cgroup %s: killing %d: %w", c.Rel, pid, err)
		}
	}
	return nil
}

func (c Cgroup) waitEmpty(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := c.Procs()
		if err != nil || len(pids) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v still there after %s", c.Rel, pids, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Mkdir creates c.
func (c Cgroup) Mkdir() error {
	if err := os.Mkdir(c.Path, 0o755); err != nil {
		return fmt.Errorf("creating cgroup %s: %w", c.Rel, unwrapPath(err))
	}
	return nil
}

// Remove removes the empty cgroup c.
func (c Cgroup) Remove() error {
	if err := syscall.Rmdir(c.Path); err != nil {
		return fmt.Errorf("removing cgroup %s: %w", c.Rel, err)
	}
	return nil
}

// Exists reports whether c's directory exists.
func (c Cgroup) Exists() bool {
	fi, err := os.Stat(c.Path)
	return err == nil && fi.IsDir()
}

// Children lists the names of c's child cgroups.
func (c Cgroup) Children() ([]string, error) {
	entries, err := os.ReadDir(c.Path)
	if err != nil {
		return nil, fmt.Errorf("listing cgroup %s: %w", c.Rel, unwrapPath(err))
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
