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
	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

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

// testCgroup builds parent/leaf in the memory hierarchy, v2 with the
// controller delegated or v1 (the lab mounts either), and reads the leaf's
// memory files back from the kernel.
func testCgroup(t *testing.T) {
	h, err := cgroup.Detect("")
	if err != nil {
		testenv.Skip(t, "no memory cgroup hierarchy: %v", err)
	}
	if want := os.Getenv(labCgroupEnv); want != "" && want != "v"+strconv.Itoa(h.Version) {
		t.Fatalf("the lab mounted cgroup %s, but the memory controller is on v%d at %s", want, h.Version, h.Mount)
	}
	limit, usage := "memory.max", "memory.current"
	if h.Version == 1 {
		limit, usage = "memory.limit_in_bytes", "memory.usage_in_bytes"
	}
	parent, err := os.MkdirTemp(filepath.Join(h.Mount, h.Own), "cgrstat-smoke-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(parent) })
	if h.Version == 2 {
		write(t, filepath.Join(parent, "cgroup.subtree_control"), "+memory")
	}
	leaf := filepath.Join(parent, "leaf")
	if err := os.Mkdir(leaf, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(leaf) })

	write(t, filepath.Join(leaf, limit), "67108864")
	if got := read(t, filepath.Join(leaf, limit)); got != "67108864" {
		t.Errorf("%s = %q after writing 67108864", limit, got)
	}
	cur := read(t, filepath.Join(leaf, usage))
	if _, err := strconv.ParseUint(cur, 10, 64); err != nil {
		t.Errorf("%s = %q: %v", usage, cur, err)
	}
}

// labCgroupEnv is set by the lab's init to the cgroup version it mounted
// the memory controller on (v1 or v2).
const labCgroupEnv = "CGRSTAT_LAB_CGROUP"

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
