package readout

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/internal/cgroupiter"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// Handle is this process's open handle on a load: the programs and maps a
// read needs, opened from their pins. Its BPF objects are its own: every
// read of them goes through this package.
type Handle struct {
	Record *loader.Record
	Path   string // the pin path
	Dir    loader.PinDir

	dump, tree               *ebpf.Program
	stats, seq, chunks, lost *ebpf.Map
	throttles                *ebpf.Map
}

// Open opens the load pinned at pinPath. With nothing loaded there the
// error wraps loader.ErrNotLoaded.
func Open(pinPath string) (*Handle, error) {
	dir := loader.PinDir(pinPath)
	rec, err := dir.Record()
	if err != nil {
		return nil, err
	}
	h := &Handle{Record: rec, Path: pinPath, Dir: dir}
	for name, prog := range map[string]**ebpf.Program{bpf.CgrstatProgDump: &h.dump, bpf.CgrstatProgTree: &h.tree} {
		if *prog, err = loadPinnedProgram(dir.Program(name)); err != nil {
			h.Close()
			return nil, fmt.Errorf("opening pinned program %s: %w", name, err)
		}
	}
	maps := map[string]**ebpf.Map{bpf.CgrstatMapStats: &h.stats, bpf.CgrstatMapSeq: &h.seq,
		bpf.CgrstatMapLost: &h.lost, bpf.CgrstatMapTreeChunks: &h.chunks, bpf.CgrstatMapThrottles: &h.throttles}
	for name, m := range maps {
		if *m, err = ebpf.LoadPinnedMap(dir.Map(name), nil); err != nil {
			h.Close()
			return nil, fmt.Errorf("opening pinned map %s: %w", name, err)
		}
	}
	return h, nil
}

// loadPinnedProgram opens the program pinned at path. ebpf.LoadPinnedProgram
// also probes, once per process, whether the kernel names BPF objects,
// only to name the Program: it creates a map, after searching every bpffs
// mount for a BPF token (mountinfo read and parsed). That probe was a tenth
// of the CPU of a whole `read CGROUP` process.
func loadPinnedProgram(path string) (*ebpf.Program, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return nil, err
	}
	attr := objGetAttr{pathname: unsafe.Pointer(p)}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfObjGet, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	if errno != 0 {
		return nil, &os.PathError{Op: "pinned program", Path: path, Err: errno}
	}
	// Any BPF object can be pinned there: the kernel names a program's
	// anonymous inode so (as ebpf.LoadPinnedProgram checks).
	if kind, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err != nil || kind != "anon_inode:bpf-prog" {
		unix.Close(int(fd))
		return nil, fmt.Errorf("%s is not a program (%s, %v)", path, kind, err)
	}
	return ebpf.NewProgramFromFD(int(fd))
}

// objGetAttr is the BPF_OBJ_GET part of union bpf_attr. pathname is a
// pointer so that the GC keeps the name alive and in place.
type objGetAttr struct {
	pathname  unsafe.Pointer
	bpfFD     uint32
	fileFlags uint32
	pathFD    int32
	_         uint32
}

const bpfObjGet = 7 // enum bpf_cmd

// Close releases the handle; the pins stay.
func (h *Handle) Close() {
	for _, prog := range []*ebpf.Program{h.dump, h.tree} {
		if prog != nil {
			prog.Close()
		}
	}
	for _, m := range []*ebpf.Map{h.stats, h.seq, h.lost, h.chunks, h.throttles} {
		if m != nil {
			m.Close()
		}
	}
}

// OrderFor is the iterator order a stat file needs: in walk mode the
// iterator itself flushes the subtree, children first.
func OrderFor(m loader.Mode) cgroupiter.Order {
	if m == loader.Walk {
		return cgroupiter.DescendantsPost
	}
	return cgroupiter.SelfOnly
}

// statFileMode is 0 because bpffs refuses names with a dot ("vmscan.stat")
// in a directory with any permission bit set. Root, the only user of the
// pin path, passes through mode-0 directories all the same.
const statFileMode = 0

// PinStatFile pins at path a stat file of c: an iterator link of the dump
// program, which flushes and prints c's stat whenever it is read. An
// existing file at path is replaced, since it may belong to a cgroup that
// was removed and made again.
func (h *Handle) PinStatFile(c cgroup.Cgroup, path string) error {
	it, err := cgroupiter.Open(h.dump, c, OrderFor(h.Record.Flush))
	if err != nil {
		return err
	}
	defer it.Close()
	if err := os.MkdirAll(filepath.Dir(path), statFileMode); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	if err := it.Pin(path); err != nil {
		return fmt.Errorf("pinning %s: %w", path, err)
	}
	return nil
}
