package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKernelMessagesNameWhatTheyMean is issue 17's smaller items: unload
// with nothing loaded names the pin path; read with a --cgroup-root that
// is no cgroup mount says so (not "no stat files are pinned"); unpin
// --all prints each stat file it removed, as unpin CGROUP does.
func TestKernelMessagesNameWhatTheyMean(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	wantUsage(t, "cgrstat is not loaded at "+l.pinPath, "unload", "--pin-path", l.pinPath)

	l.run("load", "--flush", "walk")
	t.Cleanup(func() { cli(t, "unload", "--pin-path", l.pinPath) })
	wantUsage(t, "cgroup root /tmp: not a cgroup mount point", "read", "--cgroup-root", "/tmp", "--pin-path", l.pinPath)

	a := box.Child("a")
	if err := a.Mkdir(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Remove() })
	pinned := strings.Fields(l.run("pin", box.Rel, a.Rel))
	if len(pinned) != 2 {
		t.Fatalf("pin printed %q, want two stat files", pinned)
	}
	removed := strings.Fields(l.run("unpin", "--all"))
	if strings.Join(removed, " ") != strings.Join(pinned, " ") {
		t.Errorf("unpin --all printed %q, want the stat files it removed, %q", removed, pinned)
	}
	for _, f := range pinned {
		if _, err := os.Lstat(f); err == nil || filepath.Base(f) != "vmscan.stat" {
			t.Errorf("%s: still there, or not a stat file", f)
		}
	}
}

// TestKernelWatchSignals: watch --count N stopped by a signal before its
// N frames is interrupted and exits as shells report it (143 for
// SIGTERM, 130 for SIGINT); watch without --count runs until stopped, and
// a signal is its normal end (0).
func TestKernelWatchSignals(t *testing.T) {
	l := newLab(t)
	box := l.sandbox()
	l.run("load", "--flush", "walk")
	t.Cleanup(func() { cli(t, "unload", "--pin-path", l.pinPath) })
	for _, tt := range []struct {
		count string
		sig   syscall.Signal
		want  int
	}{{"--count=100", syscall.SIGTERM, 143}, {"--count=100", syscall.SIGINT, 130}, {"--count=0", syscall.SIGTERM, 0}} {
		p := startCLI(t, "watch", box.Rel, tt.count, "--interval=200ms", "--pin-path", l.pinPath)
		time.Sleep(time.Second) // past the first frames: what is stopped is the loop
		_ = p.cmd.Process.Signal(tt.sig)
		<-p.done
		if code := p.cmd.ProcessState.ExitCode(); code != tt.want {
			t.Errorf("watch %s after %v: exit %d, want %d: %s", tt.count, tt.sig, code, tt.want, p.stderr.String())
		}
	}
}
