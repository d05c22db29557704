package format

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/pkg/check"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// decode unmarshals JSON keeping numbers exact.
func decode(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value in %q", b)
	}
	return v
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name  string
		stats []reclaim.Stat
		want  string
	}{
		{
			name: "two cgroups",
			stats: []reclaim.Stat{
				{ID: 4242, Path: "/test", DelayNS: 3_000_000, Count: 5, Reclaimed: 130},
				{ID: 4243, Path: "/test/child1", DelayNS: 1_500_000, Count: 2, Reclaimed: 64},
			},
			want: `{"cgroups":[
				{"id":4242,"path":"/test","total_vmscan_delay_ns":3000000,"vmscan_count":5,"nr_reclaimed":130},
				{"id":4243,"path":"/test/child1","total_vmscan_delay_ns":1500000,"vmscan_count":2,"nr_reclaimed":64}]}`,
		},
		{
			name:  "uint64 values stay exact",
			stats: []reclaim.Stat{{ID: 1<<64 - 1, Path: "/", DelayNS: 1<<63 + 1, Count: 0, Reclaimed: 0}},
			want:  `{"cgroups":[{"id":18446744073709551615,"path":"/","total_vmscan_delay_ns":9223372036854775809,"vmscan_count":0,"nr_reclaimed":0}]}`,
		},
		{
			name:  "a container has its identity, a plain cgroup none",
			stats: []reclaim.Stat{{ID: 7, Path: "/kubepods/besteffort/pod0b3c9a5e-8f2d-4c1e-9a7b-2d4e6f8a1c3b/crio-3f9c2a1b6d8e4f70a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"}, {ID: 8, Path: "/test"}},
			want: `{"cgroups":[
				{"id":7,"identity":{"kind":"container","pod_uid":"0b3c9a5e-8f2d-4c1e-9a7b-2d4e6f8a1c3b","qos":"besteffort","container_id":"3f9c2a1b6d8e4f70a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718","runtime":"cri-o"}},
				{"id":8,"identity":null}]}`,
		},
		{name: "nil is an empty list", stats: nil, want: `{"cgroups":[]}`},
		{name: "empty is an empty list", stats: []reclaim.Stat{}, want: `{"cgroups":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := JSON(&buf, snapshotOf(tt.stats)); err != nil {
				t.Fatal(err)
			}
			// The seed's fields keep their values; the others are
			// reclaim.Stat's, tested there.
			got, want := decode(t, buf.Bytes()).(map[string]any), decode(t, []byte(tt.want)).(map[string]any)
			gotCgs, wantCgs := got["cgroups"].([]any), want["cgroups"].([]any)
			if len(got) != 1 || gotCgs == nil || len(gotCgs) != len(wantCgs) {
				t.Fatalf("JSON wrote\n%s\nwant the cgroups of\n%s", buf.Bytes(), tt.want)
			}
			for i, w := range wantCgs {
				g := gotCgs[i].(map[string]any)
				for k, v := range w.(map[string]any) {
					if !reflect.DeepEqual(g[k], v) {
						t.Errorf("cgroup %d: %s = %v, want %v", i, k, g[k], v)
					}
				}
				if _, ok := g["buckets"]; !ok {
					t.Errorf("cgroup %d has no buckets: %v", i, g)
				}
			}
			if !strings.HasSuffix(buf.String(), "}\n") {
				t.Errorf("JSON output %q does not end with a newline", buf.String())
			}
		})
	}
}

func TestPages(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 pages", 1: "1 page", 2: "2 pages", 1 << 40: "1099511627776 pages"} {
		if got := Pages(n); got != want {
			t.Errorf("Pages(%d) = %q, want %q", n, got, want)
		}
	}
}

func loadedStatus(flush loader.Mode) *readout.Status {
	return &readout.Status{
		Loaded:  true,
		PinPath: "/sys/fs/bpf/cgrstat",
		Kernel:  "6.18.44",
		Record: &loader.Record{
			Layout: loader.Layout, Flush: flush,
			Refused:     []loader.Refusal{{Mode: loader.Fentry, Reason: "fentry refused by the kernel (EPERM; kernel lockdown?)"}},
			RstatKfuncs: "none (walk mode flushes in the iterator)",
			MaxCgroups:  10240, CgroupVersion: 1, CgroupRoot: "/sys/fs/cgroup/memory",
			Kernel: "6.18.44", LoadedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			ProgramIDs: []ebpf.ProgramID{17, 18},
		},
		Health: &readout.Health{
			Stats:                readout.Fill{Entries: 3, MaxEntries: 10240},
			Throttles:            readout.Fill{Entries: 1, MaxEntries: 10240},
			Memory:               readout.MemoryOf(readout.StatBytes, readout.TreeChunkBytes, 10240, 3, 1, 2),
			Lost:                 readout.Lost{Events: 1, TaskStorage: 5, WaitedDeltas: 3, RstatMarks: 4, RemovedDeltas: 2},
			WalkHoldsCgroupMutex: flush == loader.Walk,
		},
		StatFiles: []string{"/test", "/test/child1"},
		Stale:     []string{"/test/child1"},
		Subscribers: []readout.Subscriber{
			{Slot: 0, PID: 4242, Command: "cgrstat", MinNS: 10e6, Events: events.Counts{Sent: 7, RateLimit: 2}},
			{Slot: 3, PID: 99, Gone: true, Cgroups: 2},
		},
	}
}

func TestStatusText(t *testing.T) {
	tests := []struct {
		name    string
		st      *readout.Status
		want    []string
		notWant []string
	}{
		{
			name:    "not loaded",
			st:      &readout.Status{PinPath: "/sys/fs/bpf/x", Kernel: "6.1.0"},
			want:    []string{"kernel:      6.1.0\n", "loaded:      no (pin path /sys/fs/bpf/x)\n"},
			notWant: []string{"flush mode", "maps:"},
		},
		{
			name: "loaded in walk mode",
			st:   loadedStatus(loader.Walk),
			want: []string{
				"kernel:      6.18.44\n",
				"loaded:      yes, at /sys/fs/bpf/cgrstat since 2026-01-02 03:04:05 UTC\n",
				"flush mode:  walk\n",
				"  not fentry: fentry refused by the kernel (EPERM; kernel lockdown?)\n",
				"holding the kernel's cgroup_mutex",
				"cgroups:     v1 at /sys/fs/cgroup/memory\n",
				"maps:        3 of 10240 cgroups tracked, 1 throttled; 215.4 KiB in use (201.4 KiB preallocated + 4.0 KiB per tracked cgroup + 2.0 KiB per throttled one), at most 60.2 MiB\n",
				"lost:        events 1, task storage 5, rstat marks 4, removed deltas 2 (and 3 deltas waited for room)\n",
				"the map was full",
				"stat files:  2\n  /test\n  /test/child1 (stale: the cgroup was removed; cgrstat unpin /test/child1)\n",
				"subscribers: 2 of the event stream\n",
				"  slot 0: pid 4242 (cgrstat); reclaims of 10ms and longer in every cgroup; 7 sent, 2 dropped (rate limit 2, ring buffer full 0)\n",
				"  slot 3: pid 99, gone (killed without closing: the next subscriber takes the slot back); reclaims of 0 and longer in the subtrees of 2 cgroups; 0 sent, 0 dropped (rate limit 0, ring buffer full 0)\n",
			},
		},
		{
			name:    "loaded in fentry mode has no walk cost",
			st:      loadedStatus(loader.Fentry),
			want:    []string{"flush mode:  fentry\n"},
			notWant: []string{"cgroup_mutex"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := StatusText(&buf, tt.st); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, buf.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(buf.String(), w) {
					t.Errorf("status has %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	t.Run("not loaded", func(t *testing.T) {
		var buf bytes.Buffer
		if err := StatusJSON(&buf, &readout.Status{PinPath: "/sys/fs/bpf/x", Kernel: "6.1.0"}); err != nil {
			t.Fatal(err)
		}
		want := `{"loaded":false,"pin_path":"/sys/fs/bpf/x","kernel":"6.1.0","stat_files":[],"stale_stat_files":[],"subscribers":[]}`
		if got := decode(t, buf.Bytes()); !reflect.DeepEqual(got, decode(t, []byte(want))) {
			t.Errorf("StatusJSON wrote\n%s\nwant\n%s", buf.Bytes(), want)
		}
	})
	t.Run("loaded", func(t *testing.T) {
		var buf bytes.Buffer
		if err := StatusJSON(&buf, loadedStatus(loader.Walk)); err != nil {
			t.Fatal(err)
		}
		got, ok := decode(t, buf.Bytes()).(map[string]any)
		if !ok {
			t.Fatalf("not an object: %s", buf.Bytes())
		}
		wantMaps := `{"stats":{"entries":3,"max_entries":10240},"throttles":{"entries":1,"max_entries":10240},"walk_holds_cgroup_mutex":true,
			"memory":{"preallocated_bytes":206256,"per_cgroup_bytes":4096,"per_throttled_cgroup_bytes":2048,"used_bytes":220592,"at_most_bytes":63120816},
			"lost":{"events":1,"task_storage":5,"waited_deltas":3,"rstat_marks":4,"removed_deltas":2}}`
		if !reflect.DeepEqual(got["maps"], decode(t, []byte(wantMaps))) {
			t.Errorf("maps = %v, want %s", got["maps"], wantMaps)
		}
		wantSub := `{"slot":0,"pid":4242,"command":"cgrstat","gone":false,"min_ns":10000000,"cgroups":0,"stack":false,
			"events":{"sent":7,"rate_limit":2,"ring_full":0}}`
		if subs, _ := got["subscribers"].([]any); len(subs) != 2 || !reflect.DeepEqual(subs[0], decode(t, []byte(wantSub))) {
			t.Errorf("subscribers = %v, want 2, the first %s", got["subscribers"], wantSub)
		}
		if !reflect.DeepEqual(got["stat_files"], []any{"/test", "/test/child1"}) {
			t.Errorf("stat_files = %v", got["stat_files"])
		}
		load, _ := got["load"].(map[string]any)
		if load["flush"] != "walk" || load["cgroup_root"] != "/sys/fs/cgroup/memory" || got["loaded"] != true {
			t.Errorf("load = %v, loaded = %v", load, got["loaded"])
		}
		if !reflect.DeepEqual(load["program_ids"], []any{json.Number("17"), json.Number("18")}) {
			t.Errorf("program_ids = %v", load["program_ids"])
		}
	})
}

func TestCheckText(t *testing.T) {
	rep := &check.Report{
		Flush:  loader.Walk,
		Cgroup: 1,
		Parent: stat("/process_api/abc", 1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 2e6, 2e6, 2e6),
		Nodes: []check.Node{
			{Rel: "test", Stat: stat("", 1e6, 1e6, 1e6)},
			{Rel: "test/child1", Leaf: true, Stat: stat("", 1e6, 1e6, 1e6)},
			{Rel: "test/child2", Leaf: true, Stat: reclaim.Stat{}},
		},
		Invariants: []check.Invariant{
			{Cgroup: "test", Name: check.SumOfChildren, Pass: true},
			{Cgroup: "test/child1", Name: check.LeafReclaimed, Pass: true},
			{Cgroup: "test/child2", Name: check.LeafReclaimed, Pass: false, Detail: "delay 0 ns, count 0, limit.count 0, forced.count 0"},
			{Cgroup: "test", Name: check.AtMostParent, Pass: true},
		},
	}
	var buf bytes.Buffer
	if err := CheckText(&buf, rep); err != nil {
		t.Fatal(err)
	}
	want := `tree under /process_api/abc
CGROUP    RECLAIMS  DELAY  RECLAIMED    P99    MAX   INVARIANTS
(parent)         9   12ms  288 pages  2.0ms  2.0ms
test             3  3.0ms   96 pages  1.0ms  1.0ms  PASS 2 of 2
  child1         3  3.0ms   96 pages  1.0ms  1.0ms  PASS 1 of 1
  child2         0      0    0 pages      -      -  FAIL 0 of 1
FAIL test/child2: ` + check.LeafReclaimed + ` (delay 0 ns, count 0, limit.count 0, forced.count 0)
FAIL: 3 of 4 invariants hold (flush mode walk, cgroup v1)
`
	if buf.String() != want {
		t.Errorf("CheckText wrote\n%s\nwant\n%s", buf.String(), want)
	}
}

// TestNamesAreEscaped is issue 17's terminal escape injection: a cgroup
// named "a\e[2J\e[31mb" reaches the table, the histogram, the check
// report and status quoted, never as bytes that drive the terminal.
func TestNamesAreEscaped(t *testing.T) {
	const name, quoted = "/x/a\x1b[2J\x1b[31mb", `/x/a\x1b[2J\x1b[31mb`
	var s reclaim.Stat
	s.Path = name
	s.Observe(reclaim.Max, 5000, 1, false)
	child := s
	child.Path = name + "/c\u009b1m"
	st := loadedStatus(loader.Walk)
	st.StatFiles, st.Stale = []string{name, child.Path}, []string{name}
	st.Subscribers[0].Command = name
	rep := &check.Report{Parent: s, Nodes: []check.Node{{Rel: name, Stat: s}},
		Invariants: []check.Invariant{{Cgroup: name, Name: "sum", Detail: "detail " + name}}}
	for what, write := range map[string]func(w *bytes.Buffer) error{
		"table":  func(w *bytes.Buffer) error { return Table(w, snapshotOf([]reclaim.Stat{s, child}).Rows) },
		"hist":   func(w *bytes.Buffer) error { return Hist(w, s) },
		"status": func(w *bytes.Buffer) error { return StatusText(w, st) },
		"check":  func(w *bytes.Buffer) error { return CheckText(w, rep) },
	} {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if strings.ContainsAny(out, "\x1b\u009b") || !strings.Contains(out, quoted[3:]) {
			t.Errorf("%s: the name is not escaped:\n%q", what, out)
		}
	}
}
