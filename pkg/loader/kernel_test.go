package loader_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

func setup(t *testing.T, flush loader.Mode) (loader.Options, *cgroup.Hierarchy) {
	t.Helper()
	h := testenv.Hierarchy(t)
	return testenv.LoadOptions(t, h, flush, 512), h
}

func mustLoad(t *testing.T, opts loader.Options) *loader.Record {
	t.Helper()
	rec, err := loader.Load(opts)
	if err != nil {
		t.Fatalf("Load(%+v): %v", opts, err)
	}
	return rec
}

func TestKernelLoadTwice(t *testing.T) {
	opts, h := setup(t, loader.Auto)
	rec := mustLoad(t, opts)

	if rec.Layout != loader.Layout || rec.MaxCgroups != 512 || rec.CgroupVersion != h.Version || rec.CgroupRoot != h.Mount {
		t.Errorf("record %+v does not describe the load", rec)
	}
	if len(rec.ProgramIDs) == 0 {
		t.Error("record has no program ids")
	}
	// Auto tries fentry, kprobe, walk in order: every mode before the
	// chosen one is refused with a reason, none after it is tried.
	order := []loader.Mode{loader.Fentry, loader.Kprobe, loader.Walk}
	i := 0
	for i < len(order) && order[i] != rec.Flush {
		i++
	}
	if i == len(order) {
		t.Fatalf("flush mode %q is not one of %v", rec.Flush, order)
	}
	if len(rec.Refused) != i {
		t.Errorf("chose %s with refusals %+v; want one refusal for each of %v", rec.Flush, rec.Refused, order[:i])
	}
	for j, r := range rec.Refused {
		if j < i && (r.Mode != order[j] || r.Reason == "") {
			t.Errorf("refusal %d = %+v, want a reason for %s", j, r, order[j])
		}
	}
	t.Logf("flush mode %s, rstat %s, refused %+v", rec.Flush, rec.RstatKfuncs, rec.Refused)

	again, err := loader.Load(opts)
	if !errors.Is(err, loader.ErrLoaded) {
		t.Fatalf("second Load: %v, want ErrLoaded", err)
	}
	if again == nil || again.Flush != rec.Flush || !reflect.DeepEqual(again.ProgramIDs, rec.ProgramIDs) {
		t.Errorf("second Load returned %+v, want the first load's record %+v", again, rec)
	}
	// Loading with other options does not replace the load: it is refused,
	// saying how to change it.
	for _, o := range []loader.Options{{Flush: loader.Walk, MaxCgroups: 512}, {Flush: rec.Flush, MaxCgroups: 16}} {
		if o.Flush == rec.Flush && o.MaxCgroups == 512 {
			continue
		}
		o.PinPath = opts.PinPath
		_, err := loader.Load(o)
		var differs *loader.DiffersError
		if !errors.As(err, &differs) || !strings.Contains(err.Error(), "cgrstat unload") {
			t.Errorf("Load with %+v: %v, want a DiffersError that says how", o, err)
		}
	}
	// Options left to the default accept the load there.
	if _, err := loader.Load(loader.Options{PinPath: opts.PinPath, Flush: loader.Auto}); !errors.Is(err, loader.ErrLoaded) {
		t.Errorf("Load with default options: %v, want ErrLoaded", err)
	}
	read, err := loader.ReadRecord(opts.PinPath)
	if err != nil {
		t.Fatal(err)
	}
	if !read.LoadedAt.Equal(rec.LoadedAt) || read.Flush != rec.Flush || !reflect.DeepEqual(read.ProgramIDs, rec.ProgramIDs) {
		t.Errorf("ReadRecord = %+v, want %+v", read, rec)
	}
}

// pinForeignMap makes path a bpffs directory holding a map cgrstat did not
// pin, at rel below it.
func pinForeignMap(t *testing.T, dir, rel string, valueSize uint32, value []byte) {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: valueSize, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if value != nil {
		buf := make([]byte, valueSize)
		copy(buf, value)
		if err := m.Put(uint32(0), buf); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.Pin(path); err != nil {
		t.Fatal(err)
	}
}

func TestKernelForeignPinPath(t *testing.T) {
	recordJSON := func(layout int) []byte {
		b, err := json.Marshal(loader.Record{Layout: layout, Flush: loader.Walk})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name  string
		rel   string // where the foreign map is pinned
		size  uint32
		value []byte
		why   string
	}{
		{"unrelated map", "foo", 4, nil, "it has no cgrstat load record"},
		// A map where the record should be, of another shape: a guess from names proves nothing.
		{"info map of another shape", "maps/info", 64, recordJSON(loader.Layout), "value 64 bytes"},
		{"info map with garbage", "maps/info", 2048, []byte("not json"), "decoding load record"},
		{"info map of another layout", "maps/info", 2048, recordJSON(loader.Layout + 1), fmt.Sprintf("pinned with layout %d", loader.Layout+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, _ := setup(t, loader.Auto)
			pinForeignMap(t, opts.PinPath, tt.rel, tt.size, tt.value)
			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s on a foreign pin path succeeded", what)
				}
				var foreign *loader.ForeignError
				if !errors.As(err, &foreign) {
					t.Errorf("%s: %v is not a ForeignError", what, err)
				}
				if strings.Contains(err.Error(), "rm ") {
					t.Errorf("%s: error %q advises removing what cgrstat did not make", what, err)
				}
				for _, want := range []string{"not made by this cgrstat", tt.why} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error %q lacks %q", what, err, want)
					}
				}
			}
			_, err := loader.ReadRecord(opts.PinPath)
			check("ReadRecord", err)
			_, err = loader.Load(opts)
			check("Load", err)
			_, err = readout.Open(opts.PinPath)
			check("Open", err)
			_, err = loader.Unload(opts.PinPath)
			check("Unload", err)
			// None of them touched what is there.
			if _, err := os.Stat(filepath.Join(opts.PinPath, tt.rel)); err != nil {
				t.Errorf("the foreign pin is gone: %v", err)
			}
			entries, _ := os.ReadDir(opts.PinPath)
			if len(entries) != 1 {
				t.Errorf("pin path holds %v, want only what the test pinned", entries)
			}
		})
	}
}

func TestKernelNotLoaded(t *testing.T) {
	opts, _ := setup(t, loader.Auto)
	for what, err := range map[string]error{
		"ReadRecord": second(loader.ReadRecord(opts.PinPath)),
		"Open":       second(readout.Open(opts.PinPath)),
		"Unload":     second(loader.Unload(opts.PinPath)),
	} {
		if !errors.Is(err, loader.ErrNotLoaded) {
			t.Errorf("%s of a missing pin path: %v, want ErrNotLoaded", what, err)
		}
	}
	// An empty directory is not a foreign load either.
	if err := os.Mkdir(opts.PinPath, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := loader.ReadRecord(opts.PinPath); !errors.Is(err, loader.ErrNotLoaded) {
		t.Errorf("ReadRecord of an empty pin path: %v, want ErrNotLoaded", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestKernelUnload(t *testing.T) {
	opts, h := setup(t, loader.Auto)
	rec := mustLoad(t, opts)
	for _, id := range rec.ProgramIDs {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			t.Fatalf("program %d of the record is not loaded: %v", id, err)
		}
		p.Close()
	}
	// A stat file too: unload removes it with the rest.
	p, err := readout.Open(opts.PinPath)
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.Cgroups(t, h)
	statFile, err := pin.Pin(p, c)
	if err != nil {
		t.Fatalf("pinning a stat file for %s: %v", c.Rel, err)
	}
	// Unload waits for the programs to be freed, so this process must not
	// hold them any more.
	p.Close()
	// The note of a load or unload here killed while the record was
	// pinned: the record makes it redundant, and Unload drops it (it stayed
	// in /run/cgrstat forever after TestKernelKillLoadUnload's recoveries).
	oldIntents := cgroup.IntentDir
	cgroup.IntentDir = t.TempDir()
	t.Cleanup(func() { cgroup.IntentDir = oldIntents })
	abs, _ := filepath.Abs(opts.PinPath)
	note := filepath.Join(cgroup.IntentDir, "4194303-1.pinpath") // no such pid (PID_MAX_LIMIT)
	if err := os.WriteFile(note, []byte(abs+"\n"+abs), 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := loader.Unload(opts.PinPath)
	if err != nil {
		t.Fatalf("Unload: %v", err)
	}
	if _, err := os.Lstat(note); err == nil {
		t.Errorf("Unload of a load left a killed process's note on its pin path")
	}
	if !reflect.DeepEqual(got.ProgramIDs, rec.ProgramIDs) {
		t.Errorf("Unload returned programs %v, want %v", got.ProgramIDs, rec.ProgramIDs)
	}
	for _, path := range []string{statFile, opts.PinPath} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Unload: %v, want it gone", path, err)
		}
	}
	for _, id := range rec.ProgramIDs {
		if p, err := ebpf.NewProgramFromID(id); err == nil {
			p.Close()
			t.Errorf("program %d still loaded after Unload", id)
		}
	}
	if _, err := loader.Unload(opts.PinPath); !errors.Is(err, loader.ErrNotLoaded) {
		t.Errorf("second Unload: %v, want ErrNotLoaded", err)
	}
}

// TestKernelLoadWalk loads walk mode, which every kernel with a cgroup
// iterator can run, and reads a cgroup through it.
func TestKernelLoadWalk(t *testing.T) {
	opts, h := setup(t, loader.Walk)
	rec := mustLoad(t, opts)
	if rec.Flush != loader.Walk || len(rec.Refused) != 0 || !strings.HasPrefix(rec.RstatKfuncs, "none") {
		t.Errorf("record %+v, want walk mode with no refusals and no rstat kfuncs", rec)
	}
	p, err := readout.Open(opts.PinPath)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Record.Flush != loader.Walk || p.Path != opts.PinPath {
		t.Errorf("Open: record %+v, path %s", p.Record, p.Path)
	}
	for _, c := range []cgroup.Cgroup{testenv.Cgroups(t, h), h.DefaultParent()} {
		id, err := cgroup.ID(c)
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.ReadOne(c)
		if err != nil {
			t.Fatalf("reading %s: %v", c.Rel, err)
		}
		if st.ID != id || st.Path != c.Rel {
			t.Errorf("read %s: %+v, want id %d", c.Rel, st, id)
		}
	}
}

func TestKernelStatusUsage(t *testing.T) {
	opts, h := setup(t, loader.Auto)
	opts.MaxCgroups = 0 // the default
	rec := mustLoad(t, opts)
	if rec.MaxCgroups != loader.DefaultMaxCgroups {
		t.Errorf("record MaxCgroups %d, want the default %d", rec.MaxCgroups, loader.DefaultMaxCgroups)
	}
	p, err := readout.Open(opts.PinPath)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// A flush of a fresh cgroup that never reclaimed adds no entry.
	if _, err := p.ReadOne(testenv.Cgroups(t, h)); err != nil {
		t.Fatal(err)
	}
	snap, err := p.Snapshot(readout.Query{Fill: true})
	u := &snap.Health
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if f := u.Stats; f.MaxEntries != loader.DefaultMaxCgroups || f.Entries > int(f.MaxEntries) {
		t.Errorf("stats fill %+v, want 0..%d of %d", f, loader.DefaultMaxCgroups, loader.DefaultMaxCgroups)
	}
	// Memory does not depend on CPUs: preallocated parts plus one entry
	// per cgroup, and one per throttled cgroup (2 KiB: struct
	// throttle_stat's 1,712 bytes and the hash element's).
	m := u.Memory
	if m.PerCgroup < uint64(readout.StatBytes) || m.PerThrottled != 2048 ||
		m.Used != m.Preallocated+uint64(u.Stats.Entries)*m.PerCgroup+uint64(u.Throttles.Entries)*m.PerThrottled ||
		m.AtMost != m.Preallocated+uint64(loader.DefaultMaxCgroups)*(m.PerCgroup+m.PerThrottled) {
		t.Errorf("memory %+v does not add up for %d entries of %d bytes and %d throttled", m, u.Stats.Entries, readout.StatBytes, u.Throttles.Entries)
	}
	if f := u.Throttles; f.MaxEntries != loader.DefaultMaxCgroups || f.Entries > int(f.MaxEntries) {
		t.Errorf("throttles fill %+v, want 0..%d of %d", f, loader.DefaultMaxCgroups, loader.DefaultMaxCgroups)
	}
	if u.Lost != (readout.Lost{}) {
		t.Errorf("lost %+v right after load, want none", u.Lost)
	}
	// Fill counts what is in the map.
	keys, err := countKeys(testenv.Map(t, p, bpf.CgrstatMapStats))
	if err != nil {
		t.Fatal(err)
	}
	if u2, err := p.Snapshot(readout.Query{Fill: true}); err != nil || absDiff(u2.Health.Stats.Entries, keys) > 2 {
		t.Errorf("totals fill %+v (%v), but the map has about %d keys", u2, err, keys)
	}
}

func countKeys(m *ebpf.Map) (int, error) {
	n := 0
	var k uint64
	it := m.Iterate()
	var v []byte
	for it.Next(&k, &v) {
		n++
	}
	return n, it.Err()
}

func absDiff(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}
