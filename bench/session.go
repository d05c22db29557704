package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// session is cgrstat loaded in one flush mode at the bench's pin path, with
// a stat file pinned for the top of a tree.
type session struct {
	mode     loader.Mode
	p        *readout.Handle
	progs    map[string]*ebpf.Program // by program name
	statFile string
	pinPath  string
}

func (b *bench) loadOptions(m loader.Mode) loader.Options {
	return loader.Options{PinPath: b.pinPath, Flush: m, CgroupVersion: b.h.Version,
		MemcgV1Hierarchy: b.h.V1ID, CgroupRoot: b.h.Mount}
}

// probeModes finds the flush modes this kernel runs, best first: auto says
// which is best and why the better ones were refused; the worse ones are
// tried one by one.
func (b *bench) probeModes(r *Result) error {
	rec, err := loader.Load(b.loadOptions(loader.Auto))
	if err != nil {
		return fmt.Errorf("loading cgrstat: %w", err)
	}
	if err := unload(b.pinPath); err != nil {
		return err
	}
	r.Modes, r.Refused = []loader.Mode{rec.Flush}, rec.Refused
	order := []loader.Mode{loader.Fentry, loader.Kprobe, loader.Walk}
	for i := len(rec.Refused) + 1; i < len(order); i++ {
		if _, err := loader.Load(b.loadOptions(order[i])); err != nil {
			r.Refused = append(r.Refused, loader.Refusal{Mode: order[i], Reason: err.Error()})
			continue
		}
		if err := unload(b.pinPath); err != nil {
			return err
		}
		r.Modes = append(r.Modes, order[i])
	}
	return nil
}

// open loads mode m and pins a stat file for top.
func (b *bench) open(m loader.Mode, top cgroup.Cgroup) (*session, error) {
	if _, err := loader.Load(b.loadOptions(m)); err != nil {
		return nil, fmt.Errorf("loading cgrstat: %w", err)
	}
	s := &session{mode: m, pinPath: b.pinPath, progs: map[string]*ebpf.Program{}}
	var err error
	if s.p, err = readout.Open(b.pinPath); err != nil {
		return nil, errors.Join(err, s.close())
	}
	if err := s.openPrograms(); err != nil {
		return nil, errors.Join(err, s.close())
	}
	if s.statFile, err = pin.Pin(s.p, top); err != nil {
		return nil, errors.Join(err, s.close())
	}
	return s, nil
}

// openPrograms finds the loaded programs by the ids the load recorded.
func (s *session) openPrograms() error {
	for _, id := range s.p.Record.ProgramIDs {
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			return fmt.Errorf("opening program %d: %w", id, err)
		}
		info, err := prog.Info()
		if err != nil {
			prog.Close()
			return fmt.Errorf("program %d info: %w", id, err)
		}
		name := info.Name
		if name == bpf.CgrstatProgDumpWalk {
			name = bpf.CgrstatProgDump // walk mode's stat file program, pinned as dump
		}
		s.progs[name] = prog
	}
	for _, name := range []string{bpf.CgrstatProgVmscanStart, bpf.CgrstatProgVmscanEnd, bpf.CgrstatProgDump} {
		if s.progs[name] == nil {
			return fmt.Errorf("the load has no program %s", name)
		}
	}
	return nil
}

// flushProgram is the program rstat calls per (cgroup, CPU) pair, nil in walk mode.
func (s *session) flushProgram() *ebpf.Program {
	for _, name := range []string{bpf.CgrstatProgFlushFentry, bpf.CgrstatProgFlushKprobe} {
		if p := s.progs[name]; p != nil {
			return p
		}
	}
	return nil
}

// close unloads: the programs must be closed first, since Unload waits
// until the kernel has freed them.
func (s *session) close() error {
	for _, p := range s.progs {
		p.Close()
	}
	if s.p != nil {
		s.p.Close()
	}
	return unload(s.pinPath)
}

// unload unloads pinPath holding its lock, as cgrstat unload does: the
// bench's cgrstat commands (read, serve) leave the pin path's lock file in
// readout.LockDir while the load exists, and only a lock holder that finds
// no load left removes it. A bare loader.Unload left the file behind.
func unload(pinPath string) error {
	unlock, err := readout.Lock(context.Background(), pinPath, true)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := loader.Unload(pinPath); err != nil {
		return fmt.Errorf("unloading cgrstat: %w", err)
	}
	return nil
}

// cost reads a program's run-time statistics.
func cost(p *ebpf.Program) (Cost, error) {
	st, err := p.Stats()
	if err != nil {
		return Cost{}, fmt.Errorf("reading program statistics: %w", err)
	}
	return Cost{Runs: st.RunCount, NS: uint64(st.Runtime.Nanoseconds())}, nil
}

// sub is the cost between two readings.
func (c Cost) sub(before Cost) Cost {
	return Cost{Runs: c.Runs - before.Runs, NS: c.NS - before.NS}
}
