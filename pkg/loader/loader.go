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
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/exitcode"
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
	// Owner, when set, is recorded as the process that will unload (Record.Owner).
	Owner string
}

// ErrLoaded is returned by Load when the pin path already holds a load.
var ErrLoaded = errors.New("cgrstat is already loaded")

// Load loads and pins the collectors. With Flush=Auto it tries every mode,
// best first, and records why the kernel refused the others. On error,
// nothing it created is left behind.
func Load(opts Options) (*Record, error) {
	if rec, err := ReadRecord(opts.PinPath); err == nil {
		return rec, ErrLoaded
	} else if !errors.Is(err, ErrNotLoaded) {
		return nil, err
	}
	if err := checkNewPinPath(opts.PinPath); err != nil {
		return nil, err
	}
	if err := prepare(opts.PinPath); err != nil {
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
		err = l.pin(opts.PinPath, rec)
		l.close()
		return rec, err
	}
	return nil, noMode(opts.Flush, refused)
}

func noMode(m Mode, refused []Refusal) error {
	var reasons []string
	for _, r := range refused {
		reasons = append(reasons, r.Reason)
	}
	if m != Auto {
		return exitcode.UsageErr(errors.New(strings.Join(reasons, "; ")))
	}
	return exitcode.UsageErr(fmt.Errorf("this kernel can run no flush mode: %s", strings.Join(reasons, "; ")))
}

func prepare(pinPath string) error {
	if os.Geteuid() != 0 {
		return exitcode.UsageErr(errors.New("loading BPF programs needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)"))
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return exitcode.UsageErr(errors.New("this kernel has no BTF (/sys/kernel/btf/vmlinux); cgrstat needs CONFIG_DEBUG_INFO_BTF"))
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raising the memlock limit: %w", err)
	}
	return ensureBPFFS(pinPath)
}

func configuredSpec(opts Options) (*ebpf.CollectionSpec, error) {
	spec, err := bpf.LoadCgrstat()
	if err != nil {
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
	for _, name := range []string{"pcpu_stats", "totals", "tree_nodes"} {
		spec.Maps[name].MaxEntries = max
	}
	for name, v := range map[string]uint32{"nr_cpus": uint32(cpus), "memcg_v1_hierarchy": opts.MemcgV1Hierarchy} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", name, err)
		}
	}
	return spec, nil
}

// loaded is one mode's collection and links, not yet pinned.
type loaded struct {
	coll  *ebpf.Collection
	links map[string]link.Link
}

func loadMode(spec *ebpf.CollectionSpec, m Mode) (*loaded, error) {
	if err := probe(m); err != nil {
		return nil, err
	}
	spec = spec.Copy()
	for _, p := range []Mode{Fentry, Kprobe} {
		if p != m {
			delete(spec.Programs, flushProgram(p))
		}
	}
	var mode uint32 // FLUSH_RSTAT
	if !m.UsesRstat() {
		mode = 1 // FLUSH_WALK
	}
	if err := spec.Variables["flush_mode"].Set(mode); err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("loading collectors: %w", err)
	}
	l := &loaded{coll: coll, links: map[string]link.Link{}}
	if err := l.attach(m); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *loaded) attach(m Mode) error {
	for _, name := range []string{"vmscan_start", "vmscan_end", flushProgram(m)} {
		if name == "" {
			continue
		}
		var lk link.Link
		var err error
		if name == "flush_kprobe" {
			lk, err = link.Kprobe("bpf_rstat_flush", l.coll.Programs[name], nil)
		} else {
			lk, err = link.AttachTracing(link.TracingOptions{Program: l.coll.Programs[name]})
		}
		if err != nil {
			return fmt.Errorf("attaching %s: %w", name, err)
		}
		l.links[name] = lk
	}
	return nil
}

func (l *loaded) programIDs() []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	for _, p := range l.coll.Programs {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// close drops this process's references; pins keep what must outlive it.
func (l *loaded) close() {
	for _, lk := range l.links {
		lk.Close()
	}
	l.coll.Close()
}

func newRecord(opts Options, m Mode, refused []Refusal, ids []ebpf.ProgramID) *Record {
	max := opts.MaxCgroups
	if max == 0 {
		max = DefaultMaxCgroups
	}
	return &Record{
		Layout: Layout, Flush: m, Refused: refused, RstatKfuncs: rstatKfuncs(m),
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
