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
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
)

// DefaultMaxCgroups is how many cgroups the maps track unless told otherwise.
const DefaultMaxCgroups = 10240

// MaxCgroupsLimit bounds --max-cgroups: a kernel cannot hold more memory
// cgroups at once, live and dying together, since memcg ids are 16 bits
// (MEM_CGROUP_ID_MAX). Past it, slots could never be used, yet the tree map
// is preallocated for all of them.
const MaxCgroupsLimit = 65535

// Options configure Load.
type Options struct {
	PinPath string
	// MaxCgroups is how many cgroups the maps can track; 0 takes the
	// default for a new load and accepts any size of an existing one.
	MaxCgroups uint32
	// Flush Auto takes the best mode for a new load and accepts any mode
	// of an existing one.
	Flush Mode
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
	// ErrMaxCgroups: --max-cgroups is out of range.
	ErrMaxCgroups = fmt.Errorf("--max-cgroups must be between 1 and %d, the most memory cgroups a kernel can hold (MEM_CGROUP_ID_MAX)", MaxCgroupsLimit)
)

// DiffersError says that the pin path holds a load made with other options,
// which Load does not change: the maps hold totals that would be lost.
type DiffersError struct {
	Loaded *Record
	Asked  Options
}

func (e *DiffersError) Error() string {
	max := e.Asked.MaxCgroups
	if max == 0 {
		max = e.Loaded.MaxCgroups
	}
	mode := e.Asked.Flush
	if mode == Auto {
		mode = e.Loaded.Flush
	}
	return fmt.Sprintf("cgrstat is already loaded at %s with --flush %s --max-cgroups %d; to load with --flush %s --max-cgroups %d, run cgrstat unload first (it drops every total)",
		e.Asked.PinPath, e.Loaded.Flush, e.Loaded.MaxCgroups, mode, max)
}

// checkOptions refuses what no load can be made with, before anything is created.
func checkOptions(opts Options) error {
	if opts.MaxCgroups > MaxCgroupsLimit {
		return ErrMaxCgroups
	}
	return nil
}

// sameOptions reports whether an existing load satisfies opts.
func sameOptions(rec *Record, opts Options) bool {
	return (opts.MaxCgroups == 0 || opts.MaxCgroups == rec.MaxCgroups) &&
		(opts.Flush == Auto || opts.Flush == "" || opts.Flush == rec.Flush)
}

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
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	dir := PinDir(opts.PinPath)
	if rec, err := dir.Record(); err == nil {
		if !sameOptions(rec, opts) {
			return rec, &DiffersError{Loaded: rec, Asked: opts}
		}
		return rec, ErrLoaded
	} else if !errors.Is(err, ErrNotLoaded) {
		return nil, err
	}
	if err := checkNotNested(dir.Path()); err != nil {
		return nil, err
	}
	if err := checkNewPinPath(dir.Path()); err != nil {
		return nil, err
	}
	if err := prepare(dir); err != nil {
		return nil, err
	}
	// One copy of the kernel's BTF for the whole load: cilium/ebpf keeps
	// none between loads, so each LoadAndAssign and each of our own
	// lookups read and indexed it anew, seven times per load, 0.6-1.4 s
	// each in an emulated arm64 guest (TCG, 2026-12-03).
	cache := btf.NewCache()
	kernel, err := cache.Kernel()
	if err != nil {
		return nil, fmt.Errorf("reading the kernel's BTF: %w", err)
	}
	if err := checkTracepoints(kernel); err != nil {
		return nil, err
	}
	spec, err := configuredSpec(opts)
	if err != nil {
		return nil, err
	}
	var refused []Refusal
	for _, m := range candidates(opts.Flush) {
		l, err := loadMode(spec, m, cache)
		if err != nil {
			refused = append(refused, Refusal{m, refusal(m, err)})
			continue
		}
		rec := newRecord(opts, m, refused, l.programIDs(), kernel)
		rec.Throttle, rec.ThrottleRefused = l.throttle != nil, l.throttleRefused
		err = l.pin(dir, rec)
		l.close()
		return rec, err
	}
	return nil, &ModeError{Asked: opts.Flush, Refused: refused}
}

func prepare(dir PinDir) error {
	if !Capable() {
		return ErrNotRoot
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return ErrNoBTF
	}
	// No RLIMIT_MEMLOCK to raise: from 5.11 on, BPF memory is charged to
	// the memory cgroup. (cilium/ebpf's rlimit package probes for that
	// with a BPF map at init, in every command of this binary.)
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
	max := opts.MaxCgroups
	if max == 0 {
		max = DefaultMaxCgroups
	}
	// The tree walk's chunks are not sized by it: a read covers any tree
	// the kernel can hold, whatever the cgroups tracked for reclaim.
	specs.Stats.MaxEntries = max
	// The throttle's entries, of throttled cgroups and their ancestors, a
	// subset of stats'.
	specs.Throttles.MaxEntries = max
	if err := specs.MemcgV1Hierarchy.Set(opts.MemcgV1Hierarchy); err != nil {
		return nil, fmt.Errorf("setting memcg_v1_hierarchy: %w", err)
	}
	// A PMD-sized folio, the largest one charge asks for: a page table
	// holds pagesize/8 entries.
	if err := specs.ChargeSlackPages.Set(uint64(os.Getpagesize() / 8)); err != nil {
		return nil, fmt.Errorf("setting charge_slack_pages: %w", err)
	}
	return spec, nil
}

func newRecord(opts Options, m Mode, refused []Refusal, ids []ebpf.ProgramID, kernel *btf.Spec) *Record {
	max := opts.MaxCgroups
	if max == 0 {
		max = DefaultMaxCgroups
	}
	return &Record{
		Layout: Layout, Version: opts.Version, Flush: m, Refused: refused, RstatKfuncs: rstatKfuncs(m, kernel),
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

// rstatKfuncs names the rstat kfuncs the collectors call on this kernel
// (spec is its BTF).
func rstatKfuncs(m Mode, spec *btf.Spec) string {
	if !m.UsesRstat() {
		return "none (walk mode flushes in the iterator)"
	}
	for _, pair := range [][2]string{{"css_rstat_updated", "css_rstat_flush"}, {"cgroup_rstat_updated", "cgroup_rstat_flush"}} {
		var fn *btf.Func
		if spec.TypeByName(pair[0], &fn) == nil {
			return pair[0] + "/" + pair[1]
		}
	}
	return "unknown"
}
