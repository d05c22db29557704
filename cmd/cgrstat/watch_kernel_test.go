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
// first with non-zero rates and cold after it; q exits 0 and leaves the
// terminal as it found it (cooked mode, main screen, cursor shown).
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

	dir := t.TempDir()
	exitFile, sttyFile := filepath.Join(dir, "exit"), filepath.Join(dir, "stty")
	script := fmt.Sprintf("%s=1 %s watch %s --depth=-1 --interval=500ms --pin-path %s; echo $? > %s; stty -a > %s; sleep 60",
		cliEnv, cliExe(t), topc.Rel, l.pinPath, exitFile, sttyFile)
	tm := func(args ...string) string {
		out, err := exec.Command(tmux, append([]string{"-L", fmt.Sprintf("cgrstat-test-%d", os.Getpid())}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	tm("new-session", "-d", "-s", "watch", "-x", "200", "-y", "30", "sh", "-c", script)
	t.Cleanup(func() { _ = exec.Command(tmux, "-L", fmt.Sprintf("cgrstat-test-%d", os.Getpid()), "kill-server").Run() })

	var frame string
	deadline := time.Now().Add(30 * time.Second)
	for {
		frame = tm("capture-pane", "-p", "-t", "watch")
		if hotFirst(frame, topc.Rel) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no frame within 30s shows the hot subtree first with non-zero rates; last:\n%s", frame)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("frame:\n%s", frame)
	if tm("display", "-p", "-t", "watch", "#{alternate_on}") != "1\n" {
		t.Errorf("watch does not draw on the alternate screen")
	}

	tm("send-keys", "-t", "watch", "q")
	code := waitFile(t, exitFile)
	if code != "0" {
		t.Errorf("q: exit status %s, want 0", code)
	}
	stty := waitFile(t, sttyFile)
	modes := map[string]bool{}
	for _, f := range strings.Fields(stty) {
		modes[f] = true
	}
	for _, mode := range []string{"icanon", "echo", "isig"} {
		if !modes[mode] {
			t.Errorf("terminal not restored: %s is off after q:\n%s", mode, stty)
		}
	}
	if got := tm("display", "-p", "-t", "watch", "#{alternate_on} #{cursor_flag}"); got != "0 1\n" {
		t.Errorf("after q: alternate screen, cursor shown = %q, want \"0 1\"", got)
	}
	if _, err := os.Stat(l.pinPath); err == nil {
		t.Errorf("watch loaded the collectors but left %s behind", l.pinPath)
	}
}

// hotFirst reads a tree frame: the top, then hot, h1 and h2 (h1 and h2 in
// either order), all with stall time and reclaims above zero; cold and c1
// come after with zero.
func hotFirst(frame, top string) bool {
	lines := strings.Split(frame, "\n")
	start := -1
	for i, l := range lines {
		if strings.Contains(l, "STALL ms/s") {
			start = i + 1
		}
	}
	if start < 0 || len(lines) < start+6 {
		return false
	}
	var names []string
	for i, l := range lines[start : start+6] {
		f := strings.Fields(l)
		if len(f) < 5 {
			return false
		}
		stall, _ := strconv.ParseFloat(f[0], 64)
		reclaims, _ := strconv.ParseFloat(f[1], 64)
		busy := stall > 0 && reclaims > 0
		if busy != (i < 4) {
			return false
		}
		names = append(names, f[len(f)-1])
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
