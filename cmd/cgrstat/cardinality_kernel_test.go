package main

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// TestKernelServeCardinality: with 2,000 cgroups, the default depth,
// --depth and --match export exactly the expected series, and removed
// cgroups' series are gone from the next scrape.
func TestKernelServeCardinality(t *testing.T) {
	l := newLab(t)
	top := l.parent().Child(fmt.Sprintf("cgrstat-%d-cardinality", os.Getpid()))
	paths := buildWide(t, top, 40, 50)
	// The default case serves the whole hierarchy, which other users of
	// the machine share (the bench alone makes 10,000 cgroups): room for
	// them as well: the most a kernel can hold.
	l.run("load", fmt.Sprintf("--max-cgroups=%d", loader.MaxCgroupsLimit))
	t.Cleanup(func() { cli(t, "unload", "--pin-path", l.pinPath) })
	base := readout.Depth(top.Rel)

	// The default: the whole hierarchy down to depth 3. Other cgroups of
	// the machine are exported too; of ours, exactly those down to depth 3.
	got := exportedOnce(t, l, "--web.listen-address=127.0.0.1:0")
	for p := range got {
		if readout.Depth(p) > readout.DefaultDepth {
			t.Errorf("default exports %s, deeper than %d", p, readout.DefaultDepth)
		}
	}
	assertSet(t, "default", ours(got, top.Rel), filterPaths(paths, func(p string) bool { return readout.Depth(p) <= readout.DefaultDepth }))

	got = exportedOnce(t, l, top.Rel, fmt.Sprintf("--depth=%d", base+1), "--web.listen-address=127.0.0.1:0")
	assertSet(t, "--depth top+1", got, filterPaths(paths, func(p string) bool { return readout.Depth(p) <= base+1 }))

	re := regexp.MustCompile(`/g0[0-4]/`)
	got = exportedOnce(t, l, top.Rel, "--depth=-1", "--match="+re.String(), "--web.listen-address=127.0.0.1:0")
	assertSet(t, "--match", got, filterPaths(paths, re.MatchString))

	srv := startCLI(t, "serve", top.Rel, "--depth=-1", "--pin-path", l.pinPath, "--web.listen-address=127.0.0.1:0")
	addr := srv.serveAddr(t)
	assertSet(t, "--depth=-1", exported(scrape(t, addr)), paths)
	removed := map[string]bool{}
	for _, p := range paths[1:] {
		if name := path.Base(p); name[0] == 'c' && name[1]%2 == 1 { // c1x, c3x: 20 of each group's 50
			if err := l.h.Cgroup(p).Remove(); err != nil {
				t.Fatal(err)
			}
			removed[p] = true
		}
	}
	left := filterPaths(paths, func(p string) bool { return !removed[p] })
	t.Logf("removed %d of %d cgroups", len(removed), len(paths))
	assertSet(t, "after removal", exported(scrape(t, addr)), left)
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d:\n%s", code, srv.stderr)
	}
}

// buildWide creates top/gNN/cNN, groups x children, and removes it all at
// the end. It returns every path, top first.
func buildWide(t *testing.T, top cgroup.Cgroup, groups, children int) []string {
	t.Helper()
	var made []cgroup.Cgroup
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if made[i].Exists() {
				if err := made[i].Remove(); err != nil {
					t.Errorf("removing %s: %v", made[i].Rel, err)
				}
			}
		}
	})
	mk := func(c cgroup.Cgroup) {
		if err := c.Mkdir(); err != nil {
			t.Fatal(err)
		}
		made = append(made, c)
	}
	mk(top)
	for g := range groups {
		gc := top.Child(fmt.Sprintf("g%02d", g))
		mk(gc)
		for c := range children {
			mk(gc.Child(fmt.Sprintf("c%02d", c)))
		}
	}
	paths := make([]string, len(made))
	for i, c := range made {
		paths[i] = c.Rel
	}
	return paths
}

// exportedOnce starts serve with args, scrapes it once and stops it.
func exportedOnce(t *testing.T, l *lab, args ...string) map[string]bool {
	t.Helper()
	srv := startCLI(t, append([]string{"serve", "--pin-path", l.pinPath}, args...)...)
	got := exported(scrape(t, srv.serveAddr(t)))
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve %v exited %d:\n%s", args, code, srv.stderr)
	}
	return got
}

var cgroupSeries = regexp.MustCompile(`(?m)^cgrstat_\w+\{(?:\w+="[^"]*",)*cgroup="([^"]*)"`)

// exported is the set of cgroups a scrape has any series for.
func exported(body string) map[string]bool {
	set := map[string]bool{}
	for _, m := range cgroupSeries.FindAllStringSubmatch(body, -1) {
		set[m[1]] = true
	}
	return set
}

func ours(set map[string]bool, top string) map[string]bool {
	out := map[string]bool{}
	for p := range set {
		if p == top || strings.HasPrefix(p, top+"/") {
			out[p] = true
		}
	}
	return out
}

func filterPaths(paths []string, keep func(string) bool) []string {
	var out []string
	for _, p := range paths {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

func assertSet(t *testing.T, what string, got map[string]bool, want []string) {
	t.Helper()
	var missing, extra []string
	wantSet := map[string]bool{}
	for _, p := range want {
		wantSet[p] = true
		if !got[p] {
			missing = append(missing, p)
		}
	}
	for p := range got {
		if !wantSet[p] {
			extra = append(extra, p)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra) > 0 {
		t.Errorf("%s: %d series, want %d; missing %d %v; unexpected %d %v", what, len(got), len(want),
			len(missing), head(missing), len(extra), head(extra))
		return
	}
	t.Logf("%s: exactly the %d expected series", what, len(want))
}

func head(s []string) []string { return s[:min(len(s), 5)] }
