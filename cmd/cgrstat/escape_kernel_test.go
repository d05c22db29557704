package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// hostileName is issue 17's cgroup name: printed raw it clears the
// terminal and turns its text red. Anyone who may create a cgroup (a
// container, a delegated subtree) chooses such names.
const hostileName, hostileQuoted = "a\x1b[2J\x1b[31mb", `a\x1b[2J\x1b[31mb`

// hostileCgroup makes a cgroup so named in the test's own sandbox.
func (l *lab) hostileCgroup() (box, c cgroup.Cgroup) {
	b := l.sandbox()
	hc := b.Child(hostileName)
	if err := hc.Mkdir(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		if hc.Exists() {
			if err := hc.RemoveWait(5 * time.Second); err != nil {
				l.t.Errorf("removing %q: %v", hc.Rel, err)
			}
		}
	})
	return b, hc
}

// assertQuoted fails unless out shows the hostile name quoted and holds no
// escape character at all.
func assertQuoted(t *testing.T, what, out string) {
	t.Helper()
	if strings.ContainsRune(out, 0x1b) || !strings.Contains(out, hostileQuoted) {
		t.Errorf("%s: the cgroup name is not quoted: %q", what, out)
	}
}

// TestKernelHostileCgroupName is issue 17's terminal escape injection:
// with a cgroup named "a\e[2J\e[31mb" that reclaimed, pin, stress, read
// (table, --all, --hist), status, watch, unpin, the stale-file note and an
// error message all print the name quoted (\x1b), never the escape itself.
func TestKernelHostileCgroupName(t *testing.T) {
	l := newLab(t)
	box, hc := l.hostileCgroup()
	l.run("load", "--flush", "walk")
	t.Cleanup(func() { cli(t, "unload", "--pin-path", l.pinPath) })

	assertQuoted(t, "pin", l.run("pin", hc.Rel))
	assertQuoted(t, "stress", l.run("stress", "--size=4MiB", hc.Rel))
	read := l.run("read", hc.Rel)
	assertQuoted(t, "read", read)
	if f := strings.Fields(strings.Split(read, "\n")[1]); len(f) < 2 || f[1] == "0" {
		t.Errorf("read: no reclaim counted in the cgroup:\n%s", read)
	}
	assertQuoted(t, "read --all", l.run("read", "--all", box.Rel))
	assertQuoted(t, "read --hist", l.run("read", "--hist", hc.Rel))
	assertQuoted(t, "status", l.run("status"))
	assertQuoted(t, "watch", l.run("watch", box.Rel, "--depth=-1", "--count=1", "--interval=100ms", "--flat"))
	assertQuoted(t, "watch tree", l.run("watch", box.Rel, "--depth=-1", "--count=1", "--interval=100ms"))
	r := cli(t, "read", "cgrstat-no-such/"+hostileName, "--pin-path", l.pinPath)
	if r.code != 2 {
		t.Errorf("read of a missing cgroup: exit %d, want 2", r.code)
	}
	assertQuoted(t, "error message", r.stderr)
	assertQuoted(t, "unpin", l.run("unpin", hc.Rel))

	// A stat file whose cgroup is gone: read's note on stderr, status.
	l.run("pin", hc.Rel, box.Rel)
	if err := hc.RemoveWait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	r = cli(t, "read", "--pin-path", l.pinPath)
	if r.code != 0 {
		t.Fatalf("read with a stale stat file: exit %d: %s", r.code, r.stderr)
	}
	assertQuoted(t, "read's stale note", r.stderr)
	assertQuoted(t, "status with a stale stat file", l.run("status"))
	assertQuoted(t, "unpin --all", l.run("unpin", "--all"))
}

// TestKernelWatchTmuxHostileName: the interactive watch in a real terminal
// (tmux) draws a frame that shows the hostile cgroup's name quoted; raw,
// it cleared the screen and left it blank. q still restores the terminal.
func TestKernelWatchTmuxHostileName(t *testing.T) {
	tmux := needTool(t, "tmux")
	l := newLab(t)
	box, _ := l.hostileCgroup()
	tm := newTmux(t, tmux)
	t.Cleanup(tm.kill)
	win := tm.watch(box.Rel, l.pinPath)
	deadline := time.Now().Add(30 * time.Second)
	var frame string
	for {
		frame = tm.run("capture-pane", "-p", "-t", win.name)
		if strings.Contains(frame, "STALL ms/s") && strings.Contains(frame, hostileQuoted) && strings.Contains(frame, filepath.Base(box.Rel)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no frame within 30s shows the cgroup %s and its child quoted; last:\n%s", box.Rel, frame)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("frame:\n%s", frame)
	tm.run("send-keys", "-t", win.name, "q")
	win.assertRestored("q")
}

// TestKernelServeBadUTF8Name: a cgroup whose name is not UTF-8 (any bytes
// its creator chose) no longer makes serve's scrape unparseable for every
// cgroup of the host: its series name it as read --json does (U+FFFD for
// each invalid byte), and promtool accepts the whole scrape.
func TestKernelServeBadUTF8Name(t *testing.T) {
	promtool := needTool(t, "promtool")
	l := newLab(t)
	box := l.sandbox()
	bad := box.Child("not\xffutf8")
	if err := bad.Mkdir(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if bad.Exists() {
			if err := bad.RemoveWait(5 * time.Second); err != nil {
				t.Errorf("removing %q: %v", bad.Rel, err)
			}
		}
	})
	// serve loads the collectors itself, and unloads them when it stops.
	srv := startCLI(t, "serve", box.Rel, "--depth=-1", "--pin-path", l.pinPath, "--web.listen-address", "127.0.0.1:0")
	body := scrape(t, srv.serveAddr(t))
	var read struct{ Cgroups []reclaim.Stat }
	if err := json.Unmarshal([]byte(l.run("read", "--all", "--json", box.Rel)), &read); err != nil {
		t.Fatal(err)
	}
	if len(read.Cgroups) != 2 || !strings.Contains(read.Cgroups[1].Path, "not\uFFFDutf8") {
		t.Fatalf("read --json: %+v; want the box and not\\uFFFDutf8", read.Cgroups)
	}
	if want := `cgroup="` + read.Cgroups[1].Path + `"`; !strings.Contains(body, want) {
		t.Errorf("the scrape has no series with %s", want)
	}
	if !utf8.ValidString(body) {
		t.Error("the scrape is not UTF-8")
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d on SIGTERM:\n%s", code, srv.stderr)
	}
}
