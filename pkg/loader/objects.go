package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
)

// collectors are the programs and maps every flush mode loads. Programs of
// the other modes stay out of LoadAndAssign, so a kernel that refuses one
// (fentry under lockdown) never sees it, and the verifier spends no time on
// them: the stat-file program of the other modes (dump or dump_walk) was
// 20-34% of a load's verified instructions, and in the kernel lab's
// emulated arm64 guests every load costs 10-20 s of verification.
type collectors struct {
	VmscanStart *ebpf.Program `ebpf:"vmscan_start"`
	VmscanEnd   *ebpf.Program `ebpf:"vmscan_end"`
	DirectStart *ebpf.Program `ebpf:"direct_start"`
	DirectEnd   *ebpf.Program `ebpf:"direct_end"`
	OnRmdir     *ebpf.Program `ebpf:"on_rmdir"`
	OnRelease   *ebpf.Program `ebpf:"on_release"`
	Tree        *ebpf.Program `ebpf:"tree"`
	bpf.CgrstatMaps
	// The writable globals (throttle_measured): the stat-file program,
	// loaded apart with the mode, must read the collectors' copy.
	Bss *ebpf.Map `ebpf:".bss"`
	// Set once the throttle programs are attached: stat files print
	// the throttle, not "unavailable".
	ThrottleMeasured *ebpf.Variable `ebpf:"throttle_measured"`
}

// The mode's own programs: the stat file's program (dump, sleepable, for
// the modes that call the rstat flush kfunc; dump_walk for walk mode) and
// the program rstat calls, for the modes that have one.
type (
	fentryFlusher struct {
		Flush *ebpf.Program `ebpf:"flush_fentry"`
		Dump  *ebpf.Program `ebpf:"dump"`
	}
	kprobeFlusher struct {
		Flush *ebpf.Program `ebpf:"flush_kprobe"`
		Dump  *ebpf.Program `ebpf:"dump"`
	}
	walker struct {
		Dump *ebpf.Program `ebpf:"dump_walk"`
	}
)

// The OOM-kill collector, one struct per form of mark_victim (see
// markVictimTakesTask).
type (
	oomByTask struct {
		Victim *ebpf.Program `ebpf:"oom_victim"`
	}
	oomByPid struct {
		Victim *ebpf.Program `ebpf:"oom_victim_pid"`
		Signal *ebpf.Program `ebpf:"oom_signal"`
	}
)

// throttle times mem_cgroup_handle_over_high (fentry/fexit): loaded
// apart, since kernels that refuse fentry must still load the rest.
type throttle struct {
	Enter *ebpf.Program `ebpf:"over_high_enter"`
	Exit  *ebpf.Program `ebpf:"over_high_exit"`
}

// objects of one mode: the collectors, the mode's stat-file program, the
// flusher's one program that mode uses (nil for walk), the OOM-kill
// collector's programs by name, and the throttle's (nil where the kernel
// refused them, throttleRefused says why).
type objects struct {
	collectors
	dump            *ebpf.Program
	flush           *ebpf.Program
	oom             map[string]*ebpf.Program
	throttle        *throttle
	throttleRefused string
	mode            Mode
}

// loaded is one mode's objects and links, not yet pinned.
type loaded struct {
	objects
	links map[string]link.Link
}

// loadObjects loads what mode m needs from spec, with the flush mode set,
// reading the kernel's BTF from cache.
func loadObjects(spec *ebpf.CollectionSpec, m Mode, cache *btf.Cache) (*objects, error) {
	kernel, err := cache.Kernel()
	if err != nil {
		return nil, fmt.Errorf("reading the kernel's BTF: %w", err)
	}
	spec = spec.Copy()
	var specs bpf.CgrstatSpecs
	if err := spec.Assign(&specs); err != nil {
		return nil, err
	}
	mode := bpf.CgrstatFlushHowFLUSH_RSTAT
	if !m.UsesRstat() {
		mode = bpf.CgrstatFlushHowFLUSH_WALK
	}
	if err := specs.FlushMode.Set(uint32(mode)); err != nil {
		return nil, fmt.Errorf("setting flush_mode: %w", err)
	}
	o := &objects{mode: m}
	if err := spec.LoadAndAssign(&o.collectors, &ebpf.CollectionOptions{Cache: cache}); err != nil {
		return nil, fmt.Errorf("loading collectors: %w", err)
	}
	// The flusher shares the collectors' maps, not copies of them.
	// So does the stat-file program the .bss (throttle_measured, which
	// attachThrottle sets through the collectors' copy).
	replace := o.maps()
	replace[".bss"] = o.Bss
	opts := &ebpf.CollectionOptions{MapReplacements: replace, Cache: cache}
	switch m {
	case Fentry:
		var f fentryFlusher
		err = spec.LoadAndAssign(&f, opts)
		o.flush, o.dump = f.Flush, f.Dump
	case Kprobe:
		var f kprobeFlusher
		err = spec.LoadAndAssign(&f, opts)
		o.flush, o.dump = f.Flush, f.Dump
	default:
		var w walker
		err = spec.LoadAndAssign(&w, opts)
		o.dump = w.Dump
	}
	if err != nil {
		o.close()
		return nil, fmt.Errorf("loading the %s flush and stat-file programs: %w", m, err)
	}
	if o.oom, err = loadOOM(spec, opts, kernel); err != nil {
		o.close()
		return nil, err
	}
	if target, why := overHighFunc(kernel); target == "" {
		o.throttleRefused = why
	} else {
		for _, name := range []string{bpf.CgrstatProgOverHighEnter, bpf.CgrstatProgOverHighExit} {
			spec.Programs[name].AttachTo = target
		}
		var t throttle
		if err := spec.LoadAndAssign(&t, opts); err != nil {
			o.throttleRefused = throttleRefusal(err)
		} else {
			o.throttle = &t
		}
	}
	return o, nil
}

// overHighFunc names the function that holds the over-high handler's work
// on this kernel: mem_cgroup_handle_over_high up to 6.x; since it became
// an inline wrapper that tests memcg_nr_pages_over_high (seen on 7.2),
// __mem_cgroup_handle_over_high. Else it says why there is none. kernel
// is the kernel's BTF.
func overHighFunc(kernel *btf.Spec) (name, why string) {
	for _, name := range []string{"mem_cgroup_handle_over_high", "__mem_cgroup_handle_over_high"} {
		var fn *btf.Func
		if kernel.TypeByName(name, &fn) == nil {
			return name, ""
		}
	}
	return "", "the kernel has no mem_cgroup_handle_over_high to attach fentry/fexit to"
}

// throttleRefusal says in one line why the throttle cannot be measured.
func throttleRefusal(err error) string {
	var ve *ebpf.VerifierError
	switch {
	case errors.Is(err, unix.EPERM):
		return "fentry/fexit refused by the kernel (EPERM; kernel lockdown?)"
	case errors.Is(err, ebpf.ErrNotSupported):
		return "the kernel cannot attach fentry/fexit to mem_cgroup_handle_over_high (not supported)"
	case errors.As(err, &ve):
		return "fentry/fexit on mem_cgroup_handle_over_high rejected by the verifier: " + lastLine(ve.Log)
	}
	return "fentry/fexit on mem_cgroup_handle_over_high: " + err.Error()
}

// loadOOM loads the OOM-kill collector in the form this kernel's
// mark_victim tracepoint takes (kernel is its BTF).
func loadOOM(spec *ebpf.CollectionSpec, opts *ebpf.CollectionOptions, kernel *btf.Spec) (map[string]*ebpf.Program, error) {
	byTask, err := markVictimTakesTask(kernel)
	if err != nil {
		return nil, err
	}
	if byTask {
		var o oomByTask
		if err := spec.LoadAndAssign(&o, opts); err != nil {
			return nil, fmt.Errorf("loading the OOM-kill collector: %w", err)
		}
		return map[string]*ebpf.Program{bpf.CgrstatProgOomVictim: o.Victim}, nil
	}
	var o oomByPid
	if err := spec.LoadAndAssign(&o, opts); err != nil {
		return nil, fmt.Errorf("loading the OOM-kill collector: %w", err)
	}
	return map[string]*ebpf.Program{bpf.CgrstatProgOomVictimPid: o.Victim, bpf.CgrstatProgOomSignal: o.Signal}, nil
}

// maps names every map, as pinned under PinDir.Map.
func (o *objects) maps() map[string]*ebpf.Map {
	m := &o.CgrstatMaps
	return map[string]*ebpf.Map{
		bpf.CgrstatMapInfo: m.Info, bpf.CgrstatMapLost: m.Lost, bpf.CgrstatMapStats: m.Stats,
		bpf.CgrstatMapReclaimStarts: m.ReclaimStarts, bpf.CgrstatMapSessions: m.Sessions,
		bpf.CgrstatMapSeq: m.Seq, bpf.CgrstatMapTreeChunks: m.TreeChunks,
		bpf.CgrstatMapTreeEmpty: m.TreeEmpty, bpf.CgrstatMapPrintCopies: m.PrintCopies,
		bpf.CgrstatMapOomVictims: m.OomVictims, bpf.CgrstatMapThrottles: m.Throttles, bpf.CgrstatMapThrottleCopies: m.ThrottleCopies,
		bpf.CgrstatMapTraceGate: m.TraceGate, bpf.CgrstatMapTraceSlots: m.TraceSlots, bpf.CgrstatMapTraceRings: m.TraceRings,
	}
}

// programs names the programs that readers open from the pin path.
func (o *objects) programs() map[string]*ebpf.Program {
	// dump_walk is pinned as "dump" all the same: readers need not know the mode.
	return map[string]*ebpf.Program{bpf.CgrstatProgDump: o.dump, bpf.CgrstatProgTree: o.Tree}
}

// all lists every program of the mode, the flusher last.
func (o *objects) all() []*ebpf.Program {
	out := []*ebpf.Program{o.VmscanStart, o.VmscanEnd, o.DirectStart, o.DirectEnd, o.OnRmdir, o.OnRelease,
		o.dump, o.Tree}
	for _, p := range o.oom {
		out = append(out, p)
	}
	if o.throttle != nil {
		out = append(out, o.throttle.Enter, o.throttle.Exit)
	}
	return append(out, o.flush)
}

func (o *objects) close() {
	for _, p := range o.all() {
		if p != nil {
			p.Close()
		}
	}
	o.CgrstatMaps.Close()
	if o.Bss != nil {
		o.Bss.Close()
	}
}

func loadMode(spec *ebpf.CollectionSpec, m Mode, cache *btf.Cache) (*loaded, error) {
	if err := probe(m); err != nil {
		return nil, err
	}
	o, err := loadObjects(spec, m, cache)
	if err != nil {
		return nil, err
	}
	l := &loaded{objects: *o, links: map[string]link.Link{}}
	if err := l.attach(m); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// attachment is one program to attach and how.
type attachment struct {
	name string
	prog *ebpf.Program
	do   func(*ebpf.Program) (link.Link, error)
}

func tracing(p *ebpf.Program) (link.Link, error) {
	return link.AttachTracing(link.TracingOptions{Program: p})
}

func kprobeFlush(p *ebpf.Program) (link.Link, error) {
	return link.Kprobe("bpf_rstat_flush", p, nil)
}

func (l *loaded) attach(m Mode) error {
	attach := []attachment{
		{bpf.CgrstatProgVmscanStart, l.VmscanStart, tracing},
		{bpf.CgrstatProgVmscanEnd, l.VmscanEnd, tracing},
		{bpf.CgrstatProgDirectStart, l.DirectStart, tracing},
		{bpf.CgrstatProgDirectEnd, l.DirectEnd, tracing},
		{bpf.CgrstatProgOnRmdir, l.OnRmdir, tracing},
		{bpf.CgrstatProgOnRelease, l.OnRelease, tracing},
	}
	for name, p := range l.oom {
		attach = append(attach, attachment{name, p, tracing})
	}
	switch m {
	case Fentry:
		attach = append(attach, attachment{bpf.CgrstatProgFlushFentry, l.flush, tracing})
	case Kprobe:
		attach = append(attach, attachment{bpf.CgrstatProgFlushKprobe, l.flush, kprobeFlush})
	}
	for _, a := range attach {
		lk, err := a.do(a.prog)
		if err != nil {
			return fmt.Errorf("attaching %s: %w", a.name, err)
		}
		l.links[a.name] = lk
	}
	l.attachThrottle()
	return nil
}

// attachThrottle attaches the throttle's programs where they loaded, and
// only then lets stat files print it. A kernel that loads them but will
// not attach them (the function is missing or inlined) goes without:
// the throttle is the one figure a load may lack.
func (l *loaded) attachThrottle() {
	if l.throttle == nil {
		return
	}
	var links []link.Link
	for _, a := range []attachment{
		{bpf.CgrstatProgOverHighEnter, l.throttle.Enter, tracing},
		{bpf.CgrstatProgOverHighExit, l.throttle.Exit, tracing},
	} {
		lk, err := a.do(a.prog)
		if err != nil {
			for _, lk := range links {
				lk.Close()
			}
			l.throttleRefused = "attaching " + a.name + ": " + err.Error()
			l.throttle.Enter.Close()
			l.throttle.Exit.Close()
			l.throttle = nil
			return
		}
		links = append(links, lk)
		l.links[a.name] = lk
	}
	if err := l.ThrottleMeasured.Set(uint32(1)); err != nil {
		l.throttleRefused = "setting throttle_measured: " + err.Error()
		for _, name := range []string{bpf.CgrstatProgOverHighEnter, bpf.CgrstatProgOverHighExit} {
			l.links[name].Close()
			delete(l.links, name)
		}
		l.throttle.Enter.Close()
		l.throttle.Exit.Close()
		l.throttle = nil
	}
}

// programIDs are the programs the load keeps: attached or pinned.
func (l *loaded) programIDs() []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	kept := []*ebpf.Program{l.VmscanStart, l.VmscanEnd, l.DirectStart, l.DirectEnd, l.OnRmdir, l.OnRelease, l.flush}
	for _, p := range l.oom {
		kept = append(kept, p)
	}
	if l.throttle != nil {
		kept = append(kept, l.throttle.Enter, l.throttle.Exit)
	}
	for _, p := range l.programs() {
		kept = append(kept, p)
	}
	for _, p := range kept {
		if p == nil {
			continue
		}
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
	l.objects.close()
}
