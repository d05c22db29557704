package smoketest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/cgrstat/cgrstat/internal/testenv"
)

const cgroupRoot = "/sys/fs/cgroup"

func TestKernelSmoke(t *testing.T) {
	testenv.Root(t)
	t.Run("bpf", testBPF)
	t.Run("btf", testBTF)
	t.Run("cgroup", testCgroup)
}

// testBPF runs a program through BPF_PROG_TEST_RUN and reads back what it
// wrote into a map: proof that the verifier, the program and maps work.
func testBPF(t *testing.T) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		testenv.Skip(t, "creating a BPF map: %v", err)
	}
	defer m.Close()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		License:      "GPL",
		Instructions: countRuns(m),
	})
	if err != nil {
		t.Fatalf("loading the program: %v", err)
	}
	defer prog.Close()
	const runs = 5
	// A socket filter's test run needs at least an Ethernet header.
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14), Repeat: runs}); err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	var got uint64
	if err := m.Lookup(uint32(0), &got); err != nil {
		t.Fatalf("reading the map: %v", err)
	}
	if got != runs {
		t.Errorf("the program counted %d runs, want %d", got, runs)
	}
}

// countRuns adds one to the map's only value: *lookup(m, 0) += 1.
func countRuns(m *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	}
}

// testBTF checks the kernel describes itself: cgrstat's CO-RE objects need it.
func testBTF(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		testenv.Skip(t, "kernel BTF: %v", err)
	}
	var cgrp *btf.Struct
	if err := spec.TypeByName("cgroup", &cgrp); err != nil {
		t.Fatalf("struct cgroup in kernel BTF: %v", err)
	}
}

// testCgroup builds parent/leaf with the memory controller delegated and
// reads the leaf's memory files back from the kernel.
func testCgroup(t *testing.T) {
	ctrl, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
	if err != nil || !hasWord(string(ctrl), "memory") {
		testenv.Skip(t, "no cgroup2 memory controller at %s (controllers %q, %v)", cgroupRoot, ctrl, err)
	}
	sub, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"))
	if err != nil || !hasWord(string(sub), "memory") {
		testenv.Skip(t, "memory is not enabled in %s/cgroup.subtree_control (%q, %v)", cgroupRoot, sub, err)
	}
	parent, err := os.MkdirTemp(cgroupRoot, "cgrstat-smoke-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(parent) })
	write(t, filepath.Join(parent, "cgroup.subtree_control"), "+memory")
	leaf := filepath.Join(parent, "leaf")
	if err := os.Mkdir(leaf, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(leaf) })

	write(t, filepath.Join(leaf, "memory.max"), "67108864")
	if got := read(t, filepath.Join(leaf, "memory.max")); got != "67108864" {
		t.Errorf("memory.max = %q after writing 67108864", got)
	}
	cur := read(t, filepath.Join(leaf, "memory.current"))
	if _, err := strconv.ParseUint(cur, 10, 64); err != nil {
		t.Errorf("memory.current = %q: %v", cur, err)
	}
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

func write(t *testing.T, p, v string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(v), 0); err != nil {
		t.Fatalf("writing %q to %s: %v", v, p, err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
