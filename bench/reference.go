package main

import (
	"fmt"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// loadReference loads the seed-style baseline and the empty floor
// programs (baseline.c), not yet attached.
func loadReference(h *cgroup.Hierarchy) (*BaselineObjects, []*collectorSet, error) {
	spec, err := LoadBaseline()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the reference BPF object: %w", err)
	}
	if err := spec.Variables["memcg_v1_hierarchy"].Set(h.V1ID); err != nil {
		return nil, nil, fmt.Errorf("setting memcg_v1_hierarchy: %w", err)
	}
	var objs BaselineObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, nil, fmt.Errorf("loading the reference collectors: %w", err)
	}
	return &objs, []*collectorSet{
		{name: "baseline", begin: objs.BaseBegin, end: objs.BaseEnd},
		{name: "floor", begin: objs.FloorBegin, end: objs.FloorEnd},
	}, nil
}

func (p Pair) sub(q Pair) Pair { return Pair{Begin: p.Begin.sub(q.Begin), End: p.End.sub(q.End)} }

func (p Pair) add(q Pair) Pair {
	return Pair{Begin: Cost{p.Begin.Runs + q.Begin.Runs, p.Begin.NS + q.Begin.NS},
		End: Cost{p.End.Runs + q.End.Runs, p.End.NS + q.End.NS}}
}
