package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// The kernel tests that need reclaim from a known process run the test
// binary itself as that process, in a leaf of the test's own cgroup, so
// that the test process never leaves the cgroup it was started in:
//
//	__testenv-write CGROUP FILE SIZE [hold]   join CGROUP, write SIZE bytes of
//	                                         page cache to FILE; with hold, then
//	                                         say so and wait for stdin to close
const (
	writerCommand = "__testenv-write"
	writerHold    = "hold"
	writerWrote   = "written\n"
)

// LeafLimit is the memory limit of LimitedLeaf's leaf. At 8 MiB the writer
// (the test binary, its own memory a few MiB) was OOM-killed on 6.12.
const LeafLimit = 16 << 20

// WriterMain runs the writer when this process is one that WriteIn
// started, and does not return then. A package whose tests call WriteIn
// calls it from an init function, before the tests parse their flags.
func WriterMain() {
	if len(os.Args) < 5 || len(os.Args) > 6 || os.Args[1] != writerCommand {
		return
	}
	size, err := strconv.ParseInt(os.Args[4], 10, 64)
	if err == nil {
		err = os.WriteFile(filepath.Join(os.Args[2], "cgroup.procs"), []byte("0"), 0)
	}
	if err == nil {
		err = Fill(os.Args[3], size)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if len(os.Args) == 6 && os.Args[5] == writerHold {
		fmt.Print(writerWrote)
		io.Copy(io.Discard, os.Stdin)
	}
	os.Exit(0)
}

// fillSync is how much Fill writes between syncs. Dirty pages cannot be
// reclaimed until written back: a writer that let 48 MiB go dirty in a
// 16 MiB leaf was OOM-killed on 6.12 (CI, its flusher behind under QEMU),
// so it never lets more than this much be dirty.
const fillSync = 2 << 20

// Fill writes size bytes to file, synced as it goes: clean page cache
// charged to the caller's cgroup, which stays charged after it exits.
func Fill(file string, size int64) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	for left := size; left > 0 && err == nil; left -= fillSync {
		if err = stress.WritePattern(f, min(left, fillSync)); err == nil {
			err = f.Sync()
		}
	}
	return errors.Join(err, f.Close())
}

// LimitedLeaf makes the test's cgroup with a leaf "leaf" below it whose
// memory limit is LeafLimit (memory.max, or v1's memory.limit_in_bytes);
// on v2 the test's cgroup gives its children the memory controller. Both
// are removed at cleanup.
func LimitedLeaf(t testing.TB, h *cgroup.Hierarchy) (top, leaf cgroup.Cgroup) {
	t.Helper()
	top = Cgroups(t, h, "leaf")
	leaf = top.Child("leaf")
	if h.Version == 2 {
		if _, err := h.EnableMemory(top); err != nil {
			t.Fatal(err)
		}
	}
	SetLimit(t, h, leaf)
	return top, leaf
}

// SetLimit sets c's memory limit to LeafLimit.
func SetLimit(t testing.TB, h *cgroup.Hierarchy, c cgroup.Cgroup) {
	t.Helper()
	if err := h.SetLimits(c, cgroup.Limits{Max: LeafLimit}); err != nil {
		t.Fatal(err)
	}
}

// WriteIn runs the test binary in leaf writing size bytes of page cache to
// a file on TMPDIR (the lab's ext4 disk: without swap, tmpfs pages cannot
// be reclaimed), waits for it, and returns its pid and the command name
// the kernel gives it. The file goes at cleanup, before the cgroup does:
// its pages are charged there.
func WriteIn(t testing.TB, leaf cgroup.Cgroup, size int) (pid int, comm string) {
	t.Helper()
	cmd, comm := writer(t, leaf, size)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writer in %s: %v: %s", leaf.Rel, err, out)
	}
	return cmd.Process.Pid, comm
}

// WriteAndHold is WriteIn whose writer stays in leaf once it has written,
// until release (or the test's cleanup): a reader that names an event's
// cgroup from its task's /proc/PID/cgroup finds the task.
func WriteAndHold(t testing.TB, leaf cgroup.Cgroup, size int) (pid int, comm string, release func()) {
	t.Helper()
	cmd, comm := writer(t, leaf, size, writerHold)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	release = sync.OnceFunc(func() { stdin.Close(); cmd.Wait() })
	t.Cleanup(release)
	said, _ := io.ReadAll(io.LimitReader(out, int64(len(writerWrote))))
	if string(said) != writerWrote {
		release()
		t.Fatalf("writer in %s: %s: %s", leaf.Rel, cmd.ProcessState, stderr.String())
	}
	return cmd.Process.Pid, comm, release
}

// ThreadOf says whether tid is a thread of the running process pid. A
// writer is a Go program: its reclaims may stall any of its threads (the
// one that writes moves between threads after a blocking fsync; the
// runtime's own threads fault in memory), so an event's TID is one of
// them, not always pid (the TID == pid check failed once in four runs on
// the host).
func ThreadOf(pid, tid int) bool {
	if tid == pid {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
	return err == nil
}

// writer is the command of a writer of size bytes in leaf, and the
// command name the kernel gives it.
func writer(t testing.TB, leaf cgroup.Cgroup, size int, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(os.TempDir(), Name(t)+"-"+strconv.Itoa(size))
	t.Cleanup(func() { os.Remove(file) })
	cmd := exec.Command(exe, append([]string{writerCommand, leaf.Path, file, strconv.Itoa(size)}, extra...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	comm := filepath.Base(exe)
	if len(comm) > 15 {
		comm = comm[:15] // TASK_COMM_LEN
	}
	return cmd, comm
}
