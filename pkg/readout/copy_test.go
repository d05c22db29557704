package readout

import (
	"regexp"
	"testing"

	"github.com/cgrstat/cgrstat/bpf"
)

// tree4 is /t with /t/a (and /t/a/x) and /t/b, as a walk lists it.
var tree4 = []Member{
	{ID: 1, Path: "/t", Up: -1, Depth: 1},
	{ID: 2, Path: "/t/a", Parent: 1, Up: 0, Depth: 2},
	{ID: 3, Path: "/t/a/x", Parent: 2, Up: 1, Depth: 3},
	{ID: 4, Path: "/t/b", Parent: 1, Up: 0, Depth: 2},
}

// TestHierarchicalFilters: a filter keeps rows while they are computed, a
// row dropped still passes its pending up, and a kept row's parent is its
// closest kept ancestor.
func TestHierarchicalFilters(t *testing.T) {
	members := tree4
	pending := func(delay uint64) *bpf.CgrstatCgstat {
		var e bpf.CgrstatCgstat
		e.Pending.MaxLimitDelayNs, e.Pending.LimitHist[10] = delay, 1
		return &e
	}
	entries := map[uint64]*bpf.CgrstatCgstat{3: pending(100), 4: pending(7)}
	type want struct {
		path   string
		delay  uint64
		parent int
	}
	for _, tt := range []struct {
		name string
		f    *Filter
		want []want
	}{
		{"all", nil, []want{{"/t", 107, -1}, {"/t/a", 100, 0}, {"/t/a/x", 100, 1}, {"/t/b", 7, 0}}},
		{"depth 2", &Filter{Depth: 2}, []want{{"/t", 107, -1}, {"/t/a", 100, 0}, {"/t/b", 7, 0}}},
		{"match skips a parent", &Filter{Depth: -1, Match: regexp.MustCompile(`^/t$|x`)}, []want{{"/t", 107, -1}, {"/t/a/x", 100, 0}}},
		{"match skips the top", &Filter{Depth: -1, Match: regexp.MustCompile(`/t/`)}, []want{{"/t/a", 100, -1}, {"/t/a/x", 100, 0}, {"/t/b", 7, -1}}},
	} {
		rows := hierarchical(nil, members, entries, nil, false, tt.f)
		if len(rows) != len(tt.want) {
			t.Errorf("%s: %d rows, want %d", tt.name, len(rows), len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if r := rows[i]; r.Path != w.path || r.DelayNS != w.delay || r.Parent != w.parent || r.Depth != Depth(w.path) {
				t.Errorf("%s: row %d = %s delay %d parent %d depth %d, want %+v", tt.name, i, r.Path, r.DelayNS, r.Parent, r.Depth, w)
			}
		}
	}
}

// TestHierarchicalBelowAnEarlierTree: read --all /t /t/a lists /t/a's tree
// again, its top below /t's row, as the table indents it.
func TestHierarchicalBelowAnEarlierTree(t *testing.T) {
	first := []Member{{ID: 1, Path: "/t", Up: -1, Depth: 1}, {ID: 2, Path: "/t/a", Parent: 1, Up: 0, Depth: 2}}
	second := []Member{{ID: 2, Path: "/t/a", Parent: 1, Up: -1, Depth: 2}}
	rows := hierarchical(nil, first, nil, nil, false, nil)
	rows = hierarchical(rows, second, nil, nil, false, nil)
	if len(rows) != 3 || rows[2].Parent != 0 {
		t.Errorf("rows %+v: want the second tree's top below /t (row 0)", rows)
	}
	other := hierarchical(nil, []Member{{ID: 5, Path: "/u", Up: -1, Depth: 1}}, nil, nil, false, nil)
	if other = hierarchical(other, first, nil, nil, false, nil); other[1].Parent != -1 {
		t.Errorf("rows %+v: /t is not below /u", other)
	}
}

// TestHierarchicalThrottle: a cgroup's throttle is its throttles entry's
// total plus the pending of its subtree's entries, bucket by bucket, as
// for the stats map; a cgroup of the tree without any has none (nil
// histogram, zero count), and so does every row without a throttles map.
func TestHierarchicalThrottle(t *testing.T) {
	members := tree4
	var x, a bpf.CgrstatThrottleStat
	x.Pending.DelayNs, x.Pending.Hist[50] = 30e6, 1 // not flushed yet
	x.Total.DelayNs, x.Total.Hist[60] = 300e6, 2    // flushed: also in a's and /t's totals
	a.Total = x.Total
	top := a
	rows := hierarchical(nil, members, nil, map[uint64]*bpf.CgrstatThrottleStat{1: &top, 2: &a, 3: &x}, false, nil)
	for i, want := range []struct {
		delay, count, b50, b60 uint64
	}{{330e6, 3, 1, 2}, {330e6, 3, 1, 2}, {330e6, 3, 1, 2}, {0, 0, 0, 0}} {
		th := rows[i].Throttle
		if th.DelayNS != want.delay || th.Count != want.count || (th.Hist == nil) != (want.count == 0) ||
			th.Hist != nil && (th.Hist[50] != want.b50 || th.Hist[60] != want.b60) {
			t.Errorf("%s: throttle %+v, want %+v", rows[i].Path, th, want)
		}
	}
	for _, r := range hierarchical(nil, members, nil, nil, false, nil) {
		if r.Throttle.Hist != nil || r.Throttle.Count != 0 {
			t.Errorf("%s: throttle %+v without a throttles map", r.Path, r.Throttle)
		}
	}
}
