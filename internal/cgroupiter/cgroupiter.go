// Package cgroupiter creates cgroup iterator links (BPF_LINK_CREATE with
// a cgroup and a walk order), which cilium/ebpf's link.AttachIter cannot.
package cgroupiter

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// Order is the walk order of a cgroup iterator (enum bpf_cgroup_iter_order).
type Order uint32

const (
	SelfOnly        Order = 1
	DescendantsPre  Order = 2
	DescendantsPost Order = 3
)

// iterCgroupInfo is union bpf_iter_link_info's cgroup member.
type iterCgroupInfo struct {
	order    uint32
	cgroupFD uint32
	cgroupID uint64
}

// linkCreateIter is the BPF_LINK_CREATE part of union bpf_attr for iterators.
// iterInfo is a pointer so that the GC keeps the info alive and in place.
type linkCreateIter struct {
	progFD      uint32
	targetFD    uint32
	attachType  uint32
	flags       uint32
	iterInfo    unsafe.Pointer
	iterInfoLen uint32
	_           uint32
}

const bpfLinkCreate = 28 // enum bpf_cmd

// ErrNotIterator says that a program is not an iterator program.
var ErrNotIterator = errors.New("program is not a cgroup iterator")

// New creates an iterator link of prog over the cgroup open at
// cgroupFD, walking in order. cilium/ebpf's link.AttachIter cannot pass
// cgroup options, so this issues BPF_LINK_CREATE itself.
func New(prog *ebpf.Program, cgroupFD int, order Order) (*link.Iter, error) {
	if prog == nil || prog.Type() != ebpf.Tracing {
		return nil, ErrNotIterator
	}
	if cgroupFD <= 0 { // the kernel reads 0 as "no fd": the root of the default hierarchy
		return nil, fmt.Errorf("creating cgroup iterator: %w", unix.EBADF)
	}
	info := &iterCgroupInfo{order: uint32(order), cgroupFD: uint32(cgroupFD)}
	attr := linkCreateIter{
		progFD:      uint32(prog.FD()),
		attachType:  uint32(ebpf.AttachTraceIter),
		iterInfo:    unsafe.Pointer(info),
		iterInfoLen: uint32(unsafe.Sizeof(*info)),
	}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfLinkCreate, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(info)
	if errno != 0 {
		return nil, fmt.Errorf("creating cgroup iterator: %w", iterError(errno))
	}
	l, err := link.NewFromFD(int(fd))
	if err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("wrapping cgroup iterator link: %w", err)
	}
	it, ok := l.(*link.Iter)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("kernel returned a %T link for a cgroup iterator", l)
	}
	return it, nil
}

// iterError adds what the kernel most likely meant to a bare errno.
func iterError(errno unix.Errno) error {
	switch errno {
	case unix.EBADF:
		return fmt.Errorf("not a cgroup directory: %w", errno)
	case unix.EINVAL:
		return fmt.Errorf("kernel rejected the iterator (order or program not valid, or no cgroup iterator before Linux 6.1): %w", errno)
	case unix.EPERM, unix.EACCES:
		return fmt.Errorf("not permitted (needs root): %w", errno)
	}
	return errno
}

// Open creates an unpinned iterator link of prog over c, walking in order.
func Open(prog *ebpf.Program, c cgroup.Cgroup, order Order) (*link.Iter, error) {
	f, err := os.Open(c.Path)
	if err != nil {
		return nil, fmt.Errorf("opening cgroup %s: %w", c.Rel, err)
	}
	defer f.Close()
	it, err := New(prog, int(f.Fd()), order)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", c.Rel, err)
	}
	return it, nil
}

// ReadOnce runs prog over c once, as reading a stat file does, and returns
// what it printed.
func ReadOnce(prog *ebpf.Program, c cgroup.Cgroup, order Order) ([]byte, error) {
	it, err := Open(prog, c, order)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	r, err := it.Open()
	if err != nil {
		return nil, fmt.Errorf("reading cgroup %s: %w", c.Rel, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading cgroup %s: %w", c.Rel, err)
	}
	return b, nil
}
