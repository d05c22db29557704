package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/testenv"
)

// hotColdSpec has two stressed leaves under hot and an idle one under cold.
const hotColdSpec = `stress: {size: 4MiB}
children:
  - name: hot
    children: [{name: h1}, {name: h2}]
  - name: cold
    children: [{name: c1}]
`

// TestKernelWatchBatch: with stdout not a terminal, watch prints --count
// frames, one per interval, each with every cgroup of the tree, and
// unloads what it loaded.
func TestKernelWatchBatch(t *testing.T) {
	l := newLab(t)
	path, top := l.writeSpec(hotColdSpec)
	parent := "--parent=" + l.parent().Rel
	l.run("hierarchy", "create", "-f", path, parent)
	t.Cleanup(func() { cli(t, "hierarchy", "destroy", "-f", path, parent, "--kill", "--pin-path", l.pinPath) })
	topRel := l.parent().Child(top).Rel

	out := l.run("watch", topRel, "--depth=-1", "--count=3", "--interval=200ms", "--flat")
	if n := strings.Count(out, "cgrstat watch "); n != 3 {
		t.Errorf("%d frames, want 3", n)
	}
	for _, frame := range strings.Split(strings.TrimSpace(out), "\n\n") {
		rows := strings.Split(frame, "\n")[2:]
		if len(rows) != 6 {
			t.Errorf("frame has %d rows, want the tree's 6:\n%s", len(rows), frame)
		}
	}
	if _, err := os.Stat(l.pinPath); err == nil {
		t.Errorf("watch loaded the collectors but left %s behind", l.pinPath)
	}
}

// TestKernelWatchTmux drives the interactive view in a real terminal
// (tmux): while hot/h1 and hot/h2 reclaim, a frame shows the hot subtree
// first with non-zero rates and cold after it; q, and in a second run
// Ctrl-C, exit 0 and leave the terminal as they found it (cooked mode, main
// screen, cursor shown).
func TestKernelWatchTmux(t *testing.T) {
	tmux := needTool(t, "tmux")
	l := newLab(t)
	path, top := l.writeSpec(hotColdSpec)
	parent := "--parent=" + l.parent().Rel
	l.run("hierarchy", "create", "-f", path, parent)
	t.Cleanup(func() { cli(t, "hierarchy", "destroy", "-f", path, parent, "--kill", "--pin-path", l.pinPath) })
	topc := l.parent().Child(top)

	stop := stressLoop(t, topc.Child("hot/h1").Rel, topc.Child("hot/h2").Rel)
	defer stop()

	tm := newTmux(t, tmux)
	t.Cleanup(tm.kill)
	for _, quit := range []string{"q", "C-c"} {
		// q and Ctrl-C each end a watch of their own.
		win := tm.watch(topc.Rel, l.pinPath)
		frame := win.waitFrame(func(f string) bool { return hotFirst(f, topc.Rel) })
		t.Logf("frame:\n%s", frame)
		if tm.run("display", "-p", "-t", win.name, "#{alternate_on}") != "1\n" {
			t.Errorf("watch does not draw on the alternate screen")
		}
		tm.run("send-keys", "-t", win.name, quit)
		win.assertRestored(quit)
		if _, err := os.Stat(l.pinPath); err == nil {
			t.Errorf("watch loaded the collectors but left %s behind", l.pinPath)
		}
	}
}

// TestKernelWatchSlowReclaims: in a real terminal (tmux), e shows below
// the rows the latest slow reclaims under the watched cgroup: a known
// writer's, with its pid and its leaf; e again hides them, and q exits 0
// with the terminal restored.
func TestKernelWatchSlowReclaims(t *testing.T) {
	tmux := needTool(t, "tmux")
	l := newLab(t)
	requireReclaimableTmp(t)
	top, leaf := testenv.LimitedLeaf(t, l.h)
	tm := newTmux(t, tmux)
	t.Cleanup(tm.kill)
	win := tm.watch(top.Rel, l.pinPath, "--slow=0")
	win.waitFor("a frame", func(f string) bool { return strings.Contains(f, "STALL ms/s") })
	tm.run("send-keys", "-t", win.name, "e")
	win.waitFor("the slow reclaims' panel", func(f string) bool { return strings.Contains(f, "slow reclaims (0s and longer)") })
	pid, _ := testenv.WriteIn(t, leaf, 48<<20)
	mine := fmt.Sprintf("pid %d ", pid)
	frame := win.waitFor("a reclaim of the writer", func(f string) bool {
		return strings.Contains(f, mine) && strings.Contains(f, "cgroup "+leaf.Rel)
	})
	t.Logf("frame:\n%s", frame)
	tm.run("send-keys", "-t", win.name, "e")
	win.waitFor("the panel hidden", func(f string) bool { return !strings.Contains(f, "slow reclaims (") })
	tm.run("send-keys", "-t", win.name, "q")
	win.assertRestored("q")
}

// waitFor polls the screen until ok accepts it.
func (w *window) waitFor(what string, ok func(string) bool) string {
	deadline := time.Now().Add(30 * time.Second)
	for {
		frame := w.tm.run("capture-pane", "-p", "-t", w.name)
		if ok(frame) {
			return frame
		}
		if time.Now().After(deadline) {
			w.tm.t.Fatalf("no frame within 30s shows %s; last:\n%s", what, frame)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// newTmux is a tmux server of t's own: its socket is named for the test,
// so that a test's server starting never meets the previous test's still
// exiting on a shared socket (tmux: "server exited unexpectedly", a
// fresh-clone CI at 8168d8f).
func newTmux(t *testing.T, bin string) *tmuxServer {
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	return &tmuxServer{t: t, bin: bin, socket: fmt.Sprintf("cgrstat-test-%d-%s", os.Getpid(), name)}
}

// tmuxServer is a tmux server of the test's own (its own socket).
type tmuxServer struct {
	t           *testing.T
	bin, socket string
	n           int
}

func (tm *tmuxServer) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command(tm.bin, append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

func (tm *tmuxServer) kill() { _ = exec.Command(tm.bin, "-L", tm.socket, "kill-server").Run() }

// window is one watch in a 200x30 terminal. After watch exits, the shell
// records its status and the terminal's modes, and the window stays.
type window struct {
	tm                 *tmuxServer
	name               string
	exitFile, sttyFile string
}

func (tm *tmuxServer) watch(top, pinPath string, flags ...string) *window {
	tm.n++
	dir := tm.t.TempDir()
	w := &window{tm: tm, name: fmt.Sprintf("watch%d", tm.n), exitFile: filepath.Join(dir, "exit"), sttyFile: filepath.Join(dir, "stty")}
	script := fmt.Sprintf("%s=1 %s watch %s --depth=-1 --interval=500ms --pin-path %s %s; echo $? > %s; stty -a > %s; sleep 60",
		asCgrstatEnv, cliExe(tm.t), top, pinPath, strings.Join(flags, " "), w.exitFile, w.sttyFile)
	tm.run("new-session", "-d", "-s", w.name, "-x", "200", "-y", "30", "sh", "-c", script)
	return w
}

// waitFrame polls the screen until ok accepts it.
func (w *window) waitFrame(ok func(string) bool) string {
	deadline := time.Now().Add(30 * time.Second)
	for {
		frame := w.tm.run("capture-pane", "-p", "-t", w.name)
		if ok(frame) {
			return frame
		}
		if time.Now().After(deadline) {
			w.tm.t.Fatalf("no frame within 30s shows the hot subtree first with non-zero rates; last:\n%s", frame)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// assertRestored: watch exited 0, the terminal is back in cooked mode with
// echo and signals, on the main screen with the cursor shown.
func (w *window) assertRestored(key string) {
	t := w.tm.t
	if code := waitFile(t, w.exitFile); code != "0" {
		t.Errorf("%s: exit status %s, want 0", key, code)
	}
	stty := waitFile(t, w.sttyFile)
	modes := map[string]bool{}
	for _, f := range strings.Fields(stty) {
		modes[f] = true
	}
	for _, mode := range []string{"icanon", "echo", "isig"} {
		if !modes[mode] {
			t.Errorf("terminal not restored: %s is off after %s:\n%s", mode, key, stty)
		}
	}
	if got := w.tm.run("display", "-p", "-t", w.name, "#{alternate_on} #{cursor_flag}"); got != "0 1\n" {
		t.Errorf("after %s: alternate screen, cursor shown = %q, want \"0 1\"", key, got)
	}
}

// hotFirst reads a tree frame: the top, then hot, h1 and h2 (h1 and h2 in
// either order), all with stall time and reclaims above zero; cold and c1
// come after with zero. Rows of stress's scratch cgroups (v1 stresses in a
// cgroup of its own below the leaf) are passed over.
func hotFirst(frame, top string) bool {
	lines := strings.Split(frame, "\n")
	start := -1
	for i, l := range lines {
		if strings.Contains(l, "STALL ms/s") {
			start = i + 1
		}
	}
	if start < 0 {
		return false
	}
	var names []string
	var busy []bool
	for _, l := range lines[start:] {
		f := strings.Fields(l)
		if len(f) < 5 || strings.HasPrefix(f[len(f)-1], "cgrstat-stress-") {
			continue
		}
		stall, _ := strconv.ParseFloat(f[0], 64)
		reclaims, _ := strconv.ParseFloat(f[1], 64)
		names = append(names, f[len(f)-1])
		busy = append(busy, stall > 0 && reclaims > 0)
	}
	if len(names) != 6 {
		return false
	}
	for i := range busy {
		if busy[i] != (i < 4) {
			return false
		}
	}
	first := names[0] == top && names[1] == "hot" && names[4] == "cold" && names[5] == "c1"
	return first && (names[2] == "h1" && names[3] == "h2" || names[2] == "h2" && names[3] == "h1")
}

// stressLoop keeps the cgroups reclaiming until stop is called.
func stressLoop(t *testing.T, cgroups ...string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var out bytes.Buffer
			root := newRootCmd()
			root.SetOut(&out)
			root.SetErr(&out)
			args := append([]string{"stress", "--size=4MiB", "--rounds=4"}, cgroups...)
			if err := execute(ctx, root, args); err != nil && ctx.Err() == nil {
				t.Errorf("stress: %v\n%s", err, out.String())
				return
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 && bytes.HasSuffix(b, []byte("\n")) {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within 20s", path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
