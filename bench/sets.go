package main

import (
	"fmt"
	"os"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// collectorSet is a begin and an end program that the bench attaches and
// detaches itself, to choose the order in which the tracepoints run them.
type collectorSet struct {
	name       string
	begin, end *ebpf.Program
	links      []link.Link
}

func (c *collectorSet) attach() error {
	for _, p := range []*ebpf.Program{c.begin, c.end} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			c.detach()
			return fmt.Errorf("attaching %s collector %s: %w", c.name, p, err)
		}
		c.links = append(c.links, l)
	}
	return nil
}

func (c *collectorSet) detach() {
	for _, l := range c.links {
		l.Close()
	}
	c.links = nil
}

func (c *collectorSet) cost() (Pair, error) {
	b, err := cost(c.begin)
	if err != nil {
		return Pair{}, err
	}
	e, err := cost(c.end)
	return Pair{Begin: b, End: e}, err
}

// takeCollectors detaches the collectors that the load attached and
// pinned, and hands them over as a set.
func (s *session) takeCollectors() (*collectorSet, error) {
	for _, name := range []string{bpf.CgrstatProgVmscanStart, bpf.CgrstatProgVmscanEnd} {
		path := loader.PinDir(s.pinPath).Link(name)
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("detaching cgrstat's %s: %w", name, err)
		}
	}
	return &collectorSet{name: "cgrstat", begin: s.progs[bpf.CgrstatProgVmscanStart], end: s.progs[bpf.CgrstatProgVmscanEnd]}, nil
}
