package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/check"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
	"github.com/cgrstat/cgrstat/pkg/spec"
)

// The tests here drive the real CLI against the running kernel: on the
// host where it can, and in the kernel lab's guests (make vmtest).

// lab holds what one test needs: its own pin path and memory hierarchy.
type lab struct {
	t       *testing.T
	pinPath string
	h       *cgroup.Hierarchy
}

func newLab(t *testing.T) *lab {
	h := testenv.Hierarchy(t)
	l := &lab{t: t, h: h, pinPath: testenv.PinPath(t)}
	t.Cleanup(l.assertClean) // before PinPath's cleanup, which would unload quietly
	return l
}

// run runs cgrstat with this lab's pin path and fails unless it exits 0.
func (l *lab) run(args ...string) string {
	l.t.Helper()
	return mustCLI(l.t, append(args, "--pin-path", l.pinPath)...)
}

// assertClean fails the test if the CLI left anything behind: a load, or
// the pin path itself.
func (l *lab) assertClean() {
	if rec, err := loader.ReadRecord(l.pinPath); err == nil {
		l.t.Errorf("test left a load at %s (programs %v)", l.pinPath, rec.ProgramIDs)
	} else if _, err := os.Stat(l.pinPath); err == nil {
		l.t.Errorf("test left pin path %s", l.pinPath)
	}
}

// writeSpec writes a spec whose top name is unique to this test.
func (l *lab) writeSpec(body string) (path, top string) {
	top = fmt.Sprintf("cgrstat-%d-%s", os.Getpid(), strings.ToLower(regexp.MustCompile(`\W`).ReplaceAllString(l.t.Name(), "")))
	path = filepath.Join(l.t.TempDir(), "spec.yaml")
	if err := os.WriteFile(path, []byte("name: "+top+"\n"+body), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return path, top
}

// deepSpec is three levels below the top, with uneven fan-out and a leaf
// with its own size and rounds.
// Eight cgroups, five leaves.
const deepSpec = `stress: {size: 4MiB}
children:
  - name: a
    children:
      - name: a1
        children:
          - name: x
          - name: y
            stress: {size: 6MiB, rounds: 2}
          - name: z
      - name: a2
  - name: b
`

func (l *lab) parent() cgroup.Cgroup { return l.h.DefaultParent() }

// createTree creates the tree of a spec below the parent, removed at
// cleanup, and returns the spec's file, the --parent flag and the top.
func (l *lab) createTree(spec string) (path, parent, topRel string) {
	l.t.Helper()
	path, top := l.writeSpec(spec)
	parent = "--parent=" + l.parent().Rel
	l.run("hierarchy", "create", "-f", path, parent)
	l.t.Cleanup(func() { cli(l.t, "hierarchy", "destroy", "-f", path, parent, "--kill", "--pin-path", l.pinPath) })
	return path, parent, l.parent().Child(top).Rel
}

// assertGone fails if any cgroup of the spec is left below the parent.
func (l *lab) assertGone(top string) {
	l.t.Helper()
	if c := l.parent().Child(top); c.Exists() {
		l.t.Errorf("cgroup %s left behind", c.Rel)
	}
}

func TestKernelCheckDefaultSpec(t *testing.T) {
	l := newLab(t)
	out := l.run("check")
	if !strings.Contains(out, "PASS: 18 of 18 invariants hold") {
		t.Fatalf("check output lacks the PASS line:\n%s", out)
	}
	l.assertGone("test")
}

func TestKernelCheckDeepSpecJSON(t *testing.T) {
	l := newLab(t)
	path, top := l.writeSpec(deepSpec)
	var rep check.Report
	if err := json.Unmarshal([]byte(l.run("check", "-f", path, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || len(rep.Nodes) != 8 || len(rep.Stress) != 5 {
		t.Fatalf("report: pass %v, %d nodes, %d stressed leaves; want pass, 8, 5", rep.Pass, len(rep.Nodes), len(rep.Stress))
	}
	s, err := spec.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stats := map[string]reclaim.Stat{}
	for _, n := range rep.Nodes {
		stats[n.Rel] = n.Stat
	}
	// Recompute the invariants from the raw numbers rather than trusting the verdict.
	assertInvariants(t, s, stats, rep.Parent)
	for _, r := range rep.Stress {
		if strings.HasSuffix(r.Cgroup, "/y") && (r.Size != 6<<20 || r.Rounds != 2) {
			t.Errorf("leaf y stressed with %d bytes x %d, want 6MiB x 2", r.Size, r.Rounds)
		}
	}
	l.assertGone(top)
}

// assertInvariants recomputes check's invariants from the raw numbers:
// every non-leaf is the sum of its children in every counter, bucket and
// cause, and the largest of their maxima (forced may be more: the
// non-leaf's own limit); every cgroup's buckets add up to its count.
func assertInvariants(t *testing.T, s *spec.Spec, stats map[string]reclaim.Stat, parent reclaim.Stat) {
	t.Helper()
	_ = s.Walk(func(rel string, n *spec.Node) error {
		got := stats[rel]
		if h := got.Hist(); h.Total() != got.Count {
			t.Errorf("%s: buckets add up to %d, count %d", rel, h.Total(), got.Count)
		}
		if n.IsLeaf() {
			if got.DelayNS == 0 || got.Count == 0 {
				t.Errorf("%s: leaf without reclaim: %+v", rel, got)
			}
			// Page cache on a disk is really reclaimed (tmpfs pages are not,
			// without swap): the kernel lab's guests have an ext4 TMPDIR.
			if got.Reclaimed == 0 && reclaimableTmp(t) {
				t.Errorf("%s: stressed leaf reclaimed no page from %s: %+v", rel, os.TempDir(), got)
			}
			return nil
		}
		var sum reclaim.Stat
		for _, c := range n.Children {
			ch := stats[rel+"/"+c.Name]
			sum.Add(&ch)
		}
		if f, sf := got.Forced, sum.Forced; f.DelayNS < sf.DelayNS || f.Count < sf.Count || f.Reclaimed < sf.Reclaimed {
			t.Errorf("%s: forced %+v below its children's %+v", rel, f, sf)
		}
		// The kernel's own events and pressure are its figures, not sums.
		got.ID, got.Path, got.Forced, got.Events, got.Pressure = 0, "", sum.Forced, sum.Events, sum.Pressure
		if !got.Equal(sum) {
			t.Errorf("%s: %+v is not the sum of its children %+v", rel, got, sum)
		}
		return nil
	})
	top := stats[s.Root.Name]
	if top.DelayNS > parent.DelayNS || top.Count > parent.Count || top.Reclaimed > parent.Reclaimed || top.MaxNS > parent.MaxNS {
		t.Errorf("top %+v exceeds its parent %+v", top, parent)
	}
	th, ph := top.Hist(), parent.Hist()
	for i := range th {
		if th[i] > ph[i] {
			t.Errorf("top's bucket %d has %d, its parent's %d", i, th[i], ph[i])
		}
	}
}

// statLine is the seed's line, which stays the first line of every stat file.
var statLine = regexp.MustCompile(`^cg_id: \d+, total_vmscan_delay: \d+, vmscan_count: \d+, nr_reclaimed: \d+\n`)

// TestKernelManualWorkflow is the README's workflow, step by step.
func TestKernelManualWorkflow(t *testing.T) {
	l := newLab(t)
	path, top := l.writeSpec(deepSpec)
	l.run("load")
	rec, err := loader.ReadRecord(l.pinPath)
	if err != nil {
		t.Fatal(err)
	}
	if out := l.run("load"); !strings.Contains(out, "already loaded") {
		t.Errorf("second load says %q, want 'already loaded'", out)
	}
	parent := "--parent=" + l.parent().Rel
	created := l.run("hierarchy", "create", "-f", path, parent, "--pin")
	t.Cleanup(func() { cli(t, "hierarchy", "destroy", "-f", path, parent, "--kill", "--pin-path", l.pinPath) })
	l.run("stress", "-f", path, parent)

	files := 0
	for _, line := range strings.Split(strings.TrimSpace(created), "\n") {
		if !strings.HasSuffix(line, "/vmscan.stat") {
			continue
		}
		files++
		b, err := os.ReadFile(line) // what cat does
		if err != nil || !statLine.Match(b) {
			t.Errorf("cat %s: %q, %v", line, b, err)
		}
	}
	if files != 8 {
		t.Errorf("hierarchy create --pin printed %d stat files, want 8", files)
	}

	topRel := l.parent().Child(top).Rel
	var got struct{ Cgroups []reclaim.Stat }
	if err := json.Unmarshal([]byte(l.run("read", "--all", "--json", topRel)), &got); err != nil {
		t.Fatal(err)
	}
	parentStat := readOne(t, l, l.parent().Rel)
	s, _ := spec.ParseFile(path)
	assertInvariants(t, s, byTreeRel(got.Cgroups, l.parent().Rel), parentStat)
	assertReadViews(t, l, topRel, got.Cgroups)

	var st readout.Status
	if err := json.Unmarshal([]byte(l.run("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Loaded || len(st.StatFiles) != 8 || st.Health.Lost != (readout.Lost{}) {
		t.Errorf("status: loaded %v, %d stat files, lost %+v; want true, 8, none", st.Loaded, len(st.StatFiles), st.Health.Lost)
	}

	l.run("hierarchy", "destroy", "-f", path, parent)
	l.assertGone(top)
	if rels, _ := os.ReadDir(filepath.Join(l.pinPath, "cgroups")); len(rels) != 0 {
		t.Errorf("stat files left after destroy: %v", rels)
	}
	l.run("unload")
	for _, id := range rec.ProgramIDs {
		if p, err := ebpf.NewProgramFromID(id); err == nil {
			p.Close()
			t.Errorf("program %d still loaded after unload", id)
		}
	}
}

// assertReadViews checks the table and the histograms against the JSON
// read just before (nothing reclaims in the tree between the reads).
func assertReadViews(t *testing.T, l *lab, topRel string, stats []reclaim.Stat) {
	t.Helper()
	table := strings.Split(strings.TrimSuffix(l.run("read", "--all", topRel), "\n"), "\n")
	if len(table) != len(stats)+1 {
		t.Errorf("read --all: %d lines for %d cgroups", len(table), len(stats))
	}
	for _, line := range table {
		if n := utf8.RuneCountInString(line); n > format.MaxWidth {
			t.Errorf("read --all: a line of %d columns: %q", n, line)
		}
	}
	leaf := stats[len(stats)-1]
	hist := l.run("read", "--hist", leaf.Path)
	var bars uint64
	for _, line := range strings.Split(hist, "\n") {
		if _, rest, ok := strings.Cut(line, ") "); ok && strings.HasPrefix(line, "[") {
			n, err := strconv.ParseUint(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatalf("read --hist: bar %q", line)
			}
			bars += n
		}
	}
	if bars != leaf.Count || leaf.Count == 0 {
		t.Errorf("read --hist %s: bars add up to %d, count %d:\n%s", leaf.Path, bars, leaf.Count, hist)
	}
}

func readOne(t *testing.T, l *lab, rel string) reclaim.Stat {
	var got struct{ Cgroups []reclaim.Stat }
	if err := json.Unmarshal([]byte(l.run("read", "--json", rel)), &got); err != nil || len(got.Cgroups) != 1 {
		t.Fatalf("read %s: %v, %+v", rel, err, got)
	}
	return got.Cgroups[0]
}

// byTreeRel keys stats by their path relative to parent, as the spec names them.
func byTreeRel(stats []reclaim.Stat, parent string) map[string]reclaim.Stat {
	m := map[string]reclaim.Stat{}
	for _, s := range stats {
		rel := strings.TrimPrefix(strings.TrimPrefix(s.Path, strings.TrimSuffix(parent, "/")), "/")
		m[rel] = s
	}
	return m
}

// TestKernelFlushModes runs check in each flush mode. On kernels that
// refuse a mode, loading it must fail with one line naming the cause; in the
// kernel lab every mode must work.
func TestKernelFlushModes(t *testing.T) {
	for _, mode := range []loader.Mode{loader.Fentry, loader.Kprobe, loader.Walk} {
		t.Run(string(mode), func(t *testing.T) {
			l := newLab(t)
			path, top := l.writeSpec(deepSpec)
			r := cli(t, "check", "-f", path, "--flush", string(mode), "--pin-path", l.pinPath)
			switch {
			case r.code == 0 && strings.Contains(r.stdout, "flush mode "+string(mode)):
			case r.code == 2 && mode != loader.Walk && !testenv.Required():
				if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, string(mode)) {
					t.Errorf("refusal is not one line naming %s: %q", mode, r.stderr)
				}
				t.Skipf("this kernel refuses %s: %s", mode, strings.TrimSpace(r.stderr))
			default:
				t.Fatalf("check --flush %s: exit %d\n%s%s", mode, r.code, r.stdout, r.stderr)
			}
			l.assertGone(top)
		})
	}
}

func TestKernelBadInput(t *testing.T) {
	l := newLab(t)
	wantUsage(t, "not loaded", "read", "--all", "--pin-path", l.pinPath)
	l.run("load", "--flush", "walk")
	t.Cleanup(func() { cli(t, "unload", "--pin-path", l.pinPath) })
	wantUsage(t, "no such cgroup", "pin", "no/such/cgroup", "--pin-path", l.pinPath)
	wantUsage(t, "escapes the cgroup root", "pin", "../..", "--pin-path", l.pinPath)
	if l.h.Mount != "/sys/fs/cgroup" { // v1: other hierarchies sit beside memory's
		wantUsage(t, "outside the memory hierarchy", "read", "/sys/fs/cgroup/nope", "--pin-path", l.pinPath)
	}
	wantUsage(t, "no stat files", "read", "--pin-path", l.pinPath)
	wantUsage(t, "with flush mode walk, not fentry", "check", "--flush", "fentry", "--pin-path", l.pinPath)
	offBPFFS := t.TempDir() + "/pins"
	t.Cleanup(func() { os.Remove(readout.LockFile(offBPFFS)) })
	wantUsage(t, "not on a bpf filesystem", "load", "--pin-path", offBPFFS)
	path, top := l.writeSpec("children: [{name: a}]\n")
	wantUsage(t, "does not exist", "stress", "-f", path, "--pin-path", l.pinPath)
	wantUsage(t, "half of MemAvailable", "stress", "--size", "64TiB", l.parent().Rel, "--pin-path", l.pinPath)
	l.assertGone(top)
}

// TestKernelCreateIsAllOrNothing makes creation fail half way and checks
// that nothing is left, the memory controller of the parent included.
func TestKernelCreateIsAllOrNothing(t *testing.T) {
	l := newLab(t)
	if l.h.Version == 1 {
		// v1 has no memory.high, which the spec puts on the last node: refused
		// before anything is made (rollback on v1: TestKernelInterrupt).
		path, top := l.writeSpec("children:\n  - name: a\n  - name: b\n    memory: {high: 8MiB}\n")
		wantUsage(t, "memory high needs cgroup v2", "hierarchy", "create", "-f", path)
		l.assertGone(top)
		return
	}
	// v2: a parent that allows two descendants refuses the third mkdir.
	parent := l.parent().Child(fmt.Sprintf("cgrstat-%d-limited", os.Getpid()))
	if err := parent.Mkdir(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = parent.Remove() })
	path, _ := l.writeSpec("children: [{name: a}, {name: b}]\n")
	// cgrstat changes no setting of a parent it did not create.
	wantUsage(t, "memory controller is not enabled for its children", "hierarchy", "create", "-f", path, "--parent", parent.Rel)
	for _, w := range [][2]string{{"cgroup.subtree_control", "+memory"}, {"cgroup.max.descendants", "2"}} {
		if err := parent.Write(w[0], w[1]); err != nil {
			t.Fatal(err)
		}
	}
	r := cli(t, "hierarchy", "create", "-f", path, "--parent", parent.Rel)
	if r.code != 1 || !strings.Contains(r.stderr, "resource temporarily unavailable") {
		t.Fatalf("exit %d, %q: want the refusal of the third cgroup", r.code, r.stderr)
	}
	if names, err := parent.Children(); err != nil || len(names) != 0 {
		t.Errorf("left below %s: %v %v", parent.Rel, names, err)
	}
	if sc, _ := parent.Read("cgroup.subtree_control"); !strings.Contains(sc, "memory") {
		t.Errorf("the memory controller of %s was changed: %q", parent.Rel, sc)
	}
}

// TestKernelFullMap loads with a map too small for the tree beside a
// reference load: read must say the numbers are short (stderr and JSON),
// status must count what was lost, each lost thing once, and a load with
// other options must be refused with the way out.
func TestKernelFullMap(t *testing.T) {
	l := newLab(t)
	refPath := l.pinPath + "-ref"
	testenv.CleanupPinPath(t, refPath)
	var leaves strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&leaves, "  - name: l%d\n", i)
	}
	path, top := l.writeSpec("stress: {size: 2MiB}\nchildren:\n" + leaves.String())
	l.run("load", "--max-cgroups", "4")
	mustCLI(t, "load", "--pin-path", refPath)
	t.Cleanup(func() { cli(t, "unload", "--pin-path", refPath); cli(t, "unload", "--pin-path", l.pinPath) })
	parent := "--parent=" + l.parent().Rel
	l.run("hierarchy", "create", "-f", path, parent)
	t.Cleanup(func() { cli(t, "hierarchy", "destroy", "-f", path, parent, "--kill", "--pin-path", l.pinPath) })
	l.run("stress", "-f", path, parent)
	topRel := l.parent().Child(top).Rel

	// Every leaf: each reclaim is in its leaf's stat file or lost.
	args := []string{"read", "--json", "--pin-path", l.pinPath}
	for i := 0; i < 10; i++ {
		args = append(args, fmt.Sprintf("%s/l%d", topRel, i))
	}
	r := cli(t, args...)
	var small struct {
		Lost    *readout.Lost
		Cgroups []reclaim.Stat
	}
	if err := json.Unmarshal([]byte(r.stdout), &small); err != nil || r.code != 0 || len(small.Cgroups) != 10 {
		t.Fatalf("read: exit %d, %v", r.code, err)
	}
	if !strings.Contains(r.stderr, "warning: the map of 4 cgroups was full") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("read warned %q, want one line saying the map was full", r.stderr)
	}
	if small.Lost == nil || small.Lost.Events == 0 {
		t.Fatalf("read --json says lost %+v, want lost events", small.Lost)
	}
	var ref struct{ Cgroups []reclaim.Stat }
	if err := json.Unmarshal([]byte(mustCLI(t, "read", "--json", topRel, "--pin-path", refPath)), &ref); err != nil {
		t.Fatal(err)
	}
	var got uint64
	for _, s := range small.Cgroups {
		got += s.Count
	}
	want := ref.Cgroups[0].Count
	// Other cgroups of the machine may have lost events too, so >=.
	if got >= want || got+small.Lost.Events < want {
		t.Errorf("small map's leaves count %d reclaims and %d lost events; the reference load counts %d", got, small.Lost.Events, want)
	}
	if top := readOne(t, l, topRel); top.Count >= want {
		t.Errorf("top counts %d of %d", top.Count, want)
	}
	// Reads do not count the same loss again.
	var before readout.Status
	for i := 0; i < 4; i++ {
		l.run("read", topRel)
		var st readout.Status
		if err := json.Unmarshal([]byte(l.run("status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		if i > 0 && (st.Health.Lost.WaitedDeltas != before.Health.Lost.WaitedDeltas || st.Health.Lost.RemovedDeltas != before.Health.Lost.RemovedDeltas) {
			t.Errorf("read %d: lost %+v, before it %+v", i, st.Health.Lost, before.Health.Lost)
		}
		if st.Health.Stats.Entries > 4 {
			t.Errorf("%d entries in a map of 4", st.Health.Stats.Entries)
		}
		before = st
	}
	// Other options: refused in one line, with the way out; nothing changes.
	wantUsage(t, "run cgrstat unload first", "load", "--max-cgroups", "16", "--pin-path", l.pinPath)
	wantUsage(t, "run cgrstat unload first", "load", "--flush", "walk", "--max-cgroups", "16", "--pin-path", l.pinPath)
	if rec, err := loader.ReadRecord(l.pinPath); err != nil || rec.MaxCgroups != 4 {
		t.Errorf("after refused loads: %+v, %v", rec, err)
	}
}

// TestKernelMaxCgroupsBounds: out of range is one line and exit 2, before
// anything is created.
func TestKernelMaxCgroupsBounds(t *testing.T) {
	l := newLab(t)
	for _, n := range []string{"0", "65536", "4294967295"} {
		wantUsage(t, "--max-cgroups must be between 1 and 65535", "load", "--max-cgroups", n, "--pin-path", l.pinPath)
		if _, err := os.Stat(l.pinPath); err == nil {
			t.Errorf("load --max-cgroups %s left %s", n, l.pinPath)
		}
	}
}

// TestKernelStaleStatFileNotes: a pinned cgroup is removed; read without
// arguments reads the others and says which it skipped, and status lists
// it as stale.
func TestKernelStaleStatFileNotes(t *testing.T) {
	l := newLab(t)
	top := testenv.Cgroups(t, l.h, "gone")
	l.run("load")
	t.Cleanup(func() { cli(t, "unload", "--pin-path", l.pinPath) })
	gone := top.Child("gone")
	l.run("pin", top.Rel, gone.Rel)
	if err := gone.Remove(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gone.Mkdir() }) // testenv's cleanup removes it
	r := cli(t, "read", "--json", "--pin-path", l.pinPath)
	if r.code != 0 || !strings.Contains(r.stdout, `"path":"`+top.Rel+`"`) || strings.Contains(r.stdout, `"path":"`+gone.Rel+`"`) ||
		!strings.Contains(r.stderr, "skipped "+gone.Rel+": the cgroup was removed") {
		t.Errorf("read: exit %d, stdout %q, stderr %q; want %s read and %s skipped with a note", r.code, r.stdout, r.stderr, top.Rel, gone.Rel)
	}
	var st readout.Status
	if err := json.Unmarshal([]byte(l.run("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Stale) != 1 || st.Stale[0] != gone.Rel {
		t.Errorf("status lists stale %v, want [%s]", st.Stale, gone.Rel)
	}
}
