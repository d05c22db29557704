package cgroup

import "time"

// Paths names cgroups by id (the kernel's cgroup id, which BPF sees) with
// their path relative to the hierarchy's root. It walks the hierarchy
// once, and again for an id it does not know, at most once per second:
// an id seen in an event usually belongs to a cgroup that lives on, and a
// removed one is not found by walking anyway.
type Paths struct {
	h      *Hierarchy
	byID   map[uint64]string
	walked time.Time
}

// rewalkAfter bounds how often an unknown id walks the tree again.
const rewalkAfter = time.Second

// Paths maps the ids of h's cgroups to their paths.
func (h *Hierarchy) Paths() *Paths {
	p := &Paths{h: h}
	p.walk()
	return p
}

func (p *Paths) walk() {
	p.byID = map[uint64]string{}
	p.walked = time.Now()
	p.add(p.h.Cgroup("/"))
}

// add names c and its descendants; a cgroup removed while walked, or one
// that cannot be read, is left out, not the walk.
func (p *Paths) add(c Cgroup) {
	if id, err := ID(c); err == nil {
		p.byID[id] = c.Rel
	}
	names, err := c.Children()
	if err != nil {
		return
	}
	for _, name := range names {
		p.add(c.Child(name))
	}
}

// Path is the path of the cgroup id; false when no cgroup of the hierarchy
// has it (removed, or of another hierarchy).
func (p *Paths) Path(id uint64) (string, bool) {
	if path, ok := p.byID[id]; ok {
		return path, true
	}
	if time.Since(p.walked) < rewalkAfter {
		return "", false
	}
	p.walk()
	path, ok := p.byID[id]
	return path, ok
}
