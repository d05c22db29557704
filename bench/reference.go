package main

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// reference holds the seed-style baseline and the empty floor programs,
// attached to the reclaim tracepoints for the whole run.
type reference struct {
	objs  BaselineObjects
	links []link.Link
}

func attachReference(h *cgroup.Hierarchy) (*reference, error) {
	spec, err := LoadBaseline()
	if err != nil {
		return nil, fmt.Errorf("reading the reference BPF object: %w", err)
	}
	if err := spec.Variables["memcg_v1_hierarchy"].Set(h.V1ID); err != nil {
		return nil, fmt.Errorf("setting memcg_v1_hierarchy: %w", err)
	}
	r := &reference{}
	if err := spec.LoadAndAssign(&r.objs, nil); err != nil {
		return nil, fmt.Errorf("loading the reference collectors: %w", err)
	}
	for _, p := range []*ebpf.Program{r.objs.BaseBegin, r.objs.BaseEnd, r.objs.FloorBegin, r.objs.FloorEnd} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			r.close()
			return nil, fmt.Errorf("attaching reference program %s: %w", p, err)
		}
		r.links = append(r.links, l)
	}
	return r, nil
}

func (r *reference) close() {
	for _, l := range r.links {
		l.Close()
	}
	r.objs.Close()
}

// snapshot is the statistics of the three collector pairs at one moment.
type snapshot struct{ cgrstat, baseline, floor Pair }

func pairOf(begin, end *ebpf.Program) (Pair, error) {
	b, err1 := cost(begin)
	e, err2 := cost(end)
	return Pair{Begin: b, End: e}, errors.Join(err1, err2)
}

func (r *reference) snapshot(s *session) (snapshot, error) {
	var sn snapshot
	var errs [3]error
	sn.cgrstat, errs[0] = pairOf(s.progs["vmscan_start"], s.progs["vmscan_end"])
	sn.baseline, errs[1] = pairOf(r.objs.BaseBegin, r.objs.BaseEnd)
	sn.floor, errs[2] = pairOf(r.objs.FloorBegin, r.objs.FloorEnd)
	return sn, errors.Join(errs[:]...)
}

func (p Pair) sub(q Pair) Pair { return Pair{Begin: p.Begin.sub(q.Begin), End: p.End.sub(q.End)} }
