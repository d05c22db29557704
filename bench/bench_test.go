package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

func TestConsoleRoundTrip(t *testing.T) {
	want := &Result{Machine: "guest", Kernel: "7.2.0", Trees: []TreeInfo{{N: 100, MemMiB: 3}},
		Reads: []Read{{Mode: "fentry", N: 100, AfterReclaimNS: []int64{1, 2, 3}}}}
	f, err := os.Create(filepath.Join(t.TempDir(), "console"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeConsole(f, want); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	// What a serial console adds: CRs, and kernel messages between lines.
	console := strings.ReplaceAll(string(b), "\n", "\r\n[    1.0] random: crng init done\r\n")
	got, err := readConsole([]byte("SeaBIOS\r\n" + console))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	if _, err := readConsole([]byte(strings.Replace(string(b), markData+" ", markData+" x", 1))); err == nil {
		t.Error("a garbled result was accepted")
	}
	if _, err := readConsole([]byte("Kernel panic\n")); err == nil {
		t.Error("a console without a result was accepted")
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []int64
		want int64
	}{{nil, 0}, {[]int64{5}, 5}, {[]int64{9, 1, 5}, 5}, {[]int64{4, 1, 3, 2}, 2}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestSpreadLeaves(t *testing.T) {
	for _, n := range []int{5, 21, 100, 1000, 10000} {
		tr := &tree{n: n, top: cgroup.Cgroup{Rel: "/t", Path: "/t"}}
		tr.nodes = append(tr.nodes, tr.top)
		for i := 1; i < n; i++ {
			tr.nodes = append(tr.nodes, tr.nodes[(i-1)/fanOut].Child(strconv.Itoa(i)))
		}
		leaves := tr.spreadLeaves()
		if len(leaves) != stressedLeaves {
			t.Fatalf("n=%d: %d leaves", n, len(leaves))
		}
		for i, l := range tr.nodes {
			isLeaf := i*fanOut+1 >= n
			for _, x := range leaves {
				if x == l && !isLeaf {
					t.Errorf("n=%d: node %d has children but was picked as a leaf", n, i)
				}
			}
		}
	}
}

func TestParseSizes(t *testing.T) {
	if got, err := parseSizes("100, 1000,10000"); err != nil || !reflect.DeepEqual(got, []int{100, 1000, 10000}) {
		t.Errorf("parseSizes = %v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "3", "100,"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
}

// TestKernelBenchUnloadRemovesLockFile: a cgrstat command the bench runs
// (read, serve) leaves the pin path's lock file while the load exists, as
// it must; the bench's unload then removes it. A bare loader.Unload left it
// in /run/cgrstat after every make bench.
func TestKernelBenchUnloadRemovesLockFile(t *testing.T) {
	h := testenv.Hierarchy(t)
	opts := testenv.LoadOptions(t, h, loader.Walk, 64)
	if _, err := loader.Load(opts); err != nil {
		t.Fatal(err)
	}
	// What a cgrstat read does: a shared lock, released with the load still there.
	unlock, err := readout.Lock(context.Background(), opts.PinPath, false)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	lock := readout.LockFile(opts.PinPath)
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("the lock file of a loaded pin path: %v", err)
	}
	if err := unload(opts.PinPath); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after the bench's unload, %s: %v (want it gone)", lock, err)
	}
}

// TestPrintCollectorsPlainCheck: the collectors' table shows each set's
// figure beside its plain measurement, and marks a ratio outside 20%.
func TestPrintCollectorsPlainCheck(t *testing.T) {
	pair := func(ns uint64) Pair { return Pair{Begin: Cost{100, 100 * ns}, End: Cost{100, 100 * ns}} }
	c := Collectors{Mode: loader.Walk, Cgrstat: pair(300), Baseline: pair(400), Floor: pair(50),
		Plain:     map[string]Pair{"cgrstat": pair(200), "baseline": pair(380), "floor": pair(50)},
		VsPlain:   map[string]float64{"cgrstat": 1.5, "baseline": 400.0 / 380, "floor": 1},
		Contended: map[string]Pair{"cgrstat": pair(900), "baseline": pair(1200), "floor": pair(100)}}
	var out strings.Builder
	printResult(&out, &Result{Machine: "host", Collectors: []Collectors{c}})
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "walk" {
			lines[f[1]] = strings.Join(f, " ")
		}
	}
	for set, want := range map[string]string{"cgrstat": "600 400 1.50x (over 20%) 1800 3.00x", "baseline": "800 760 1.05x 2400 3.00x", "floor": "100 100 1.00x 200 2.00x"} {
		if !strings.Contains(lines[set], want) {
			t.Errorf("%s line %q, want it to hold %q\n%s", set, lines[set], want, out.String())
		}
	}
}
