package reclaim_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/exporter"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// TestKernelOOMKill: a task that allocates 64 MiB of anonymous memory in
// a leaf limited to 16 MiB (no swap) is OOM-killed; the leaf and its
// parent count its OOM kills, from BPF, in every flush mode, as read --all
// and /metrics give them and exactly as the kernel's own counter says
// (memory.events oom_kill on v2, memory.oom_control oom_kill on v1). The
// kernel may kill twice for one hog: the pipeline's other tasks are
// candidates too, and a second charge can fail before the first victim's
// memory is freed (a fresh-clone CI on the v1 host saw oom_kill grow by 2),
// so the test wants at least one kill and BPF's count equal to the
// kernel's. The memcg OOM killer chooses only among the leaf's tasks:
// nothing of the machine's is hurt.
func TestKernelOOMKill(t *testing.T) {
	h := testenv.Hierarchy(t)
	if _, err := exec.LookPath("sort"); err != nil {
		testenv.Skip(t, "no sort(1) to allocate with: %v", err)
	}
	loads := twoLoads(t)
	top := testenv.Cgroups(t, h, "leaf")
	enableMemory(t, h, top)
	leaf := top.Child("leaf")
	limitFile, eventsFile := "memory.max", "memory.events"
	if h.Version == 1 {
		limitFile, eventsFile = "memory.limit_in_bytes", "memory.oom_control"
	}
	if err := leaf.Write(limitFile, strconv.Itoa(16<<20)); err != nil {
		t.Fatal(err)
	}
	before := oomKillsOf(t, leaf, eventsFile)
	// The shell joins the leaf itself, then becomes the hog: sort holds
	// its whole input, one 64 MiB line of zeros, in anonymous memory.
	hog := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec sh -c 'head -c 67108864 /dev/zero | sort >/dev/null'`, "sh", leaf.Path)
	out, err := hog.CombinedOutput()
	t.Logf("hog: %v, %q", err, out)
	if err == nil {
		t.Fatal("the 64 MiB hog in a 16 MiB cgroup was not killed")
	}
	kernel := oomKillsOf(t, leaf, eventsFile) - before
	if kernel < 1 {
		t.Errorf("%s: oom_kill grew by %d, want at least 1 (the hog)", eventsFile, kernel)
	}
	for i, p := range loads {
		all, err := p.Subtree(top)
		if err != nil {
			t.Fatal(err)
		}
		ts, ls := all[0], all[1]
		t.Logf("load %d: %s: %d OOM kills, %s: %d; %s: %d max reclaims", i, ls.Path, ls.OOMKills, ts.Path, ts.OOMKills, ls.Path, ls.Causes[reclaim.Max].Count)
		if ls.Path != leaf.Rel || ls.OOMKills != kernel || ts.OOMKills != kernel {
			t.Errorf("load %d: %s has %d OOM kills, %s %d; want %d (the kernel's count)", i, ls.Path, ls.OOMKills, ts.Path, ts.OOMKills, kernel)
		}
		// The kernel's own counter, read in the tree walk.
		if !ls.Events.Read || ls.Events.OOMKill != oomKillsOf(t, leaf, eventsFile) {
			t.Errorf("load %d: %s: events %+v; %s says oom_kill %d", i, ls.Path, ls.Events, eventsFile, oomKillsOf(t, leaf, eventsFile))
		}
		if h.Version == 1 && ls.Events.Failcnt == 0 {
			t.Errorf("load %d: %s: failcnt 0 after the hog hit the limit", i, ls.Path)
		}
		f, err := p.ReadOne(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if f.OOMKills != ls.OOMKills {
			t.Errorf("load %d: the stat file says %d OOM kills, read --all %d", i, f.OOMKills, ls.OOMKills)
		}
		metrics := scrapeOnce(t, p, top)
		want := fmt.Sprintf("cgrstat_oom_kills_total{cgroup=%q} %d", leaf.Rel, kernel)
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("load %d: /metrics lacks %s", i, want)
		}
	}
	for _, p := range loads {
		assertNothingLostBut(t, p)
	}
}

// oomKillsOf reads the oom_kill line of a memory.events or
// memory.oom_control file.
func oomKillsOf(t *testing.T, c cgroup.Cgroup, file string) uint64 {
	t.Helper()
	text, err := c.Read(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", filepath.Join(c.Rel, file), line)
			}
			return n
		}
	}
	t.Fatalf("%s has no oom_kill line: %q", filepath.Join(c.Rel, file), text)
	return 0
}

// scrapeOnce is what Prometheus would get from serve for top's subtree.
func scrapeOnce(t *testing.T, p *readout.Handle, top cgroup.Cgroup) string {
	t.Helper()
	h, err := exporter.Handler(exporter.New(readout.NewSource(p.Path, top, readout.Filter{Depth: -1})), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
