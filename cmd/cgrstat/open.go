package main

import (
	"errors"
	"fmt"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// hierarchy finds the memory cgroup hierarchy.
func (g *globals) hierarchy() (*cgroup.Hierarchy, error) {
	h, err := cgroup.Detect(g.cgroupRoot)
	return h, usage(err)
}

// open opens the pinned load.
func (g *globals) open() (*readout.Handle, error) {
	p, err := readout.Open(g.pinPath)
	if errors.Is(err, loader.ErrNotLoaded) {
		return nil, fmt.Errorf("%w at %s (run: %s)", err, g.pinPath, g.command("load"))
	}
	return p, err
}

// openIfLoaded opens the load, or returns nil when nothing is loaded.
func (g *globals) openIfLoaded() (*readout.Handle, error) {
	p, err := g.open()
	if errors.Is(err, loader.ErrNotLoaded) {
		return nil, nil
	}
	return p, err
}

// cgroups finds the memory hierarchy and resolves CGROUP arguments, all or
// nothing.
func (g *globals) cgroups(args []string) (*cgroup.Hierarchy, []cgroup.Cgroup, error) {
	h, err := g.hierarchy()
	if err != nil {
		return nil, nil, err
	}
	var cgs []cgroup.Cgroup
	for _, a := range args {
		c, err := h.Resolve(a)
		if err != nil {
			return nil, nil, usage(err)
		}
		cgs = append(cgs, c)
	}
	return h, cgs, nil
}
