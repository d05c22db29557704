package loader

import (
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// TracepointError says that a reclaim tracepoint does not take what the
// collectors read, so loading them would record wrong numbers.
type TracepointError struct {
	Tracepoint string
	Why        string
}

func (e *TracepointError) Error() string {
	return fmt.Sprintf("tracepoint %s %s on this kernel: this cgrstat does not know its arguments", e.Tracepoint, e.Why)
}

// endTracepoints are the tracepoints whose first argument the collectors
// read: nr_reclaimed, an unsigned long, on every kernel from 6.1 to 7.x and
// in the mm series that appends a memcg. The begin tracepoints' arguments,
// which that series reorders, are not read at all.
var endTracepoints = []string{"mm_vmscan_memcg_reclaim_end", "mm_vmscan_direct_reclaim_end"}

// markVictimTakesTask says which form the oom:mark_victim tracepoint
// has: (struct task_struct *, uid_t) from 6.8, (int pid) before, from the
// kernel's BTF (spec).
func markVictimTakesTask(spec *btf.Spec) (bool, error) {
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_mark_victim", &td); err != nil {
		return false, &TracepointError{"mark_victim", "is missing"}
	}
	ptr, ok := btf.UnderlyingType(td.Type).(*btf.Pointer)
	if !ok {
		return false, &TracepointError{"mark_victim", "has no prototype"}
	}
	proto, ok := btf.UnderlyingType(ptr.Target).(*btf.FuncProto)
	if !ok || len(proto.Params) < 2 {
		return false, &TracepointError{"mark_victim", "takes no victim"}
	}
	switch t := btf.UnderlyingType(proto.Params[1].Type).(type) {
	case *btf.Pointer:
		return true, nil
	case *btf.Int:
		if t.Size == 4 {
			return false, nil
		}
	}
	return false, &TracepointError{"mark_victim", fmt.Sprintf("takes %s first, neither a task nor a pid", proto.Params[1].Type)}
}

// checkTracepoints refuses a kernel whose end tracepoints changed their
// first argument, from the kernel's BTF (btf_trace_<name> typedefs).
func checkTracepoints(spec *btf.Spec) error {
	for _, tp := range endTracepoints {
		var td *btf.Typedef
		if err := spec.TypeByName("btf_trace_"+tp, &td); err != nil {
			return &TracepointError{tp, "is missing"}
		}
		ptr, ok := btf.UnderlyingType(td.Type).(*btf.Pointer)
		if !ok {
			return &TracepointError{tp, "has no prototype"}
		}
		proto, ok := btf.UnderlyingType(ptr.Target).(*btf.FuncProto)
		// The first parameter is the tracepoint's context (void *).
		if !ok || len(proto.Params) < 2 {
			return &TracepointError{tp, "takes no nr_reclaimed"}
		}
		i, ok := btf.UnderlyingType(proto.Params[1].Type).(*btf.Int)
		if !ok || i.Size != 8 || i.Encoding&btf.Signed != 0 {
			return &TracepointError{tp, fmt.Sprintf("takes %s first, not nr_reclaimed (unsigned long)", proto.Params[1].Type)}
		}
	}
	return nil
}
