// Package loader loads cgrstat's BPF collectors, attaches them, and pins
// programs, links and maps under a bpffs path so that they outlive the
// process; it also opens and removes what an earlier load pinned.
package loader

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
)

// DefaultMaxCgroups is how many cgroups the maps track unless told otherwise.
const DefaultMaxCgroups = 10240

// Options configure Load.
type Options struct {
	PinPath    string
	MaxCgroups uint32
	Flush      Mode
	// CgroupVersion and MemcgV1Hierarchy describe the memory hierarchy
	// (MemcgV1Hierarchy is 0 on cgroup v2).
	CgroupVersion    int
	MemcgV1Hierarchy uint32
	CgroupRoot       string
	// Version names the program that loads, for the load record.
	Version string
	// Owner, when set, is recorded as the process that will unload (Record.Owner).
	Owner string
}

var (
	// ErrLoaded is returned by Load when the pin path already holds a load.
	ErrLoaded = errors.New("cgrstat is already loaded")
	// ErrNotRoot: loading BPF programs needs privileges this process lacks.
	ErrNotRoot = errors.New("loading BPF programs needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)")
	// ErrNoBTF: the kernel has no BTF, which every program here relies on.
	ErrNoBTF = errors.New("this kernel has no BTF (/sys/kernel/btf/vmlinux); cgrstat needs CONFIG_DEBUG_INFO_BTF")
	// ErrNotBPFFS: the pin path is not on a bpf filesystem, and cannot be.
	ErrNotBPFFS = errors.New("not on a bpf filesystem")
)

// ModeError says that the kernel refused every flush mode Load tried.
type ModeError struct {
	Asked   Mode
	Refused []Refusal
}

func (e *ModeError) Error() string {
	var reasons []string
	for _, r := range e.Refused {
		reasons = append(reasons, r.Reason)
	}
	if e.Asked != Auto {
		return strings.Join(reasons, "; ")
	}
	return "this kernel can run no flush mode: " + strings.Join(reasons, "; ")
}

// Load loads and pins the collectors. With Flush=Auto it tries every mode,
// best first, and records why the kernel refused the others. On error,
// nothing it created is left behind.
func Load(opts Options) (*Record, error) {
	dir := PinDir(opts.PinPath)
	if rec, err := dir.Record(); err == nil {
		return rec, ErrLoaded
	} else if !errors.Is(err, ErrNotLoaded) {
		return nil, err
	}
	if err := checkNewPinPath(dir.Path()); err != nil {
		return nil, err
	}
	if err := prepare(dir); err != nil {
		return nil, err
	}
	spec, err := configuredSpec(opts)
	if err != nil {
		return nil, err
	}
	var refused []Refusal
	for _, m := range candidates(opts.Flush) {
		l, err := loadMode(spec, m)
		if err != nil {
			refused = append(refused, Refusal{m, refusal(m, err)})
			continue
		}
		rec := newRecord(opts, m, refused, l.programIDs())
		err = l.pin(dir, rec)
		l.close()
		return rec, err
	}
	return nil, &ModeError{Asked: opts.Flush, Refused: refused}
}

func prepare(dir PinDir) error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return ErrNoBTF
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raising the memlock limit: %w", err)
	}
	return ensureBPFFS(dir)
}

func configuredSpec(opts Options) (*ebpf.CollectionSpec, error) {
	spec, err := bpf.LoadCgrstat()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	var specs bpf.CgrstatSpecs
	if err := spec.Assign(&specs); err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("counting CPUs: %w", err)
	}
	max := opts.MaxCgroups
	if max == 0 {
		max = DefaultMaxCgroups
	}
	for _, m := range []*ebpf.MapSpec{specs.PcpuStats, specs.Totals, specs.TreeNodes} {
		m.MaxEntries = max
	}
	if err := specs.NrCpus.Set(uint32(cpus)); err != nil {
		return nil, fmt.Errorf("setting nr_cpus: %w", err)
	}
	if err := specs.MemcgV1Hierarchy.Set(opts.MemcgV1Hierarchy); err != nil {
		return nil, fmt.Errorf("setting memcg_v1_hierarchy: %w", err)
	}
	return spec, nil
}

func newRecord(opts Options, m Mode, refused []Refusal, ids []ebpf.ProgramID) *Record {
	max := opts.MaxCgroups
	if max == 0 {
		max = DefaultMaxCgroups
	}
	return &Record{
		Layout: Layout, Version: opts.Version, Flush: m, Refused: refused, RstatKfuncs: rstatKfuncs(m),
		MaxCgroups: max, CgroupVersion: opts.CgroupVersion, CgroupRoot: opts.CgroupRoot,
		Kernel: KernelRelease(), LoadedAt: time.Now().UTC(),
		ProgramIDs: ids, Owner: opts.Owner,
	}
}

// KernelRelease is the running kernel's release (uname -r).
func KernelRelease() string {
	var uts unix.Utsname
	if unix.Uname(&uts) != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(uts.Release[:])
}

// rstatKfuncs names the rstat kfuncs the collectors call on this kernel.
func rstatKfuncs(m Mode) string {
	if !m.UsesRstat() {
		return "none (walk mode flushes in the iterator)"
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return "unknown"
	}
	for _, pair := range [][2]string{{"css_rstat_updated", "css_rstat_flush"}, {"cgroup_rstat_updated", "cgroup_rstat_flush"}} {
		var fn *btf.Func
		if spec.TypeByName(pair[0], &fn) == nil {
			return pair[0] + "/" + pair[1]
		}
	}
	return "unknown"
}
