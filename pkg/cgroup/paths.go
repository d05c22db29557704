package cgroup

import (
	"sync"
	"time"
)

// Paths names cgroups by id (the kernel's cgroup id, which BPF sees and
// events carry) with their path relative to the hierarchy's root, while
// they exist. It tries, cheapest first: the ids it already named; the
// task the event is about (see fromTask: no capability needed); the
// cgroup's file handle (see byHandle: CAP_DAC_READ_SEARCH); a walk of the
// hierarchy, at most once a second, for a Paths that walks: an id seen in
// an event usually belongs to a cgroup that lives on, and a removed one is
// not found by walking anyway. Safe for concurrent use.
type Paths struct {
	h     *Hierarchy
	walks bool

	mu     sync.Mutex
	byID   map[uint64]string
	walked time.Time
}

// rewalkAfter bounds how often an unknown id walks the tree again.
const rewalkAfter = time.Second

// Paths names h's cgroups, having walked h once: trace and watch, which
// name every event as it comes.
func (h *Hierarchy) Paths() *Paths {
	p := &Paths{h: h, walks: true}
	p.walk()
	return p
}

// TaskPaths names cgroups without walking h or keeping what it found:
// serve, whose exemplar store keeps the names it needs (bounded) and falls
// back to the cgroups of its last scrape, a walk it has anyway.
func (h *Hierarchy) TaskPaths() *Paths { return &Paths{h: h} }

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
// has it (removed, or of another hierarchy) or it could not be found. pid,
// if not 0, is a task in that cgroup or below it (the task an event is
// about).
func (p *Paths) Path(id uint64, pid int) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if path, ok := p.byID[id]; ok {
		return path, true
	}
	if pid > 0 {
		if path, ok := p.h.fromTask(id, pid); ok {
			p.keep(id, path)
			return path, true
		}
	}
	if path, err := p.h.byHandle(id); err == nil {
		p.keep(id, path)
		return path, true
	}
	if !p.walks || time.Since(p.walked) < rewalkAfter {
		return "", false
	}
	p.walk()
	path, ok := p.byID[id]
	return path, ok
}

// keep remembers a name found without a walk until the next walk, which
// forgets the removed cgroups; a Paths that never walks keeps none.
func (p *Paths) keep(id uint64, path string) {
	if p.walks {
		p.byID[id] = path
	}
}
