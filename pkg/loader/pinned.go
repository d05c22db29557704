package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/internal/exitcode"
)

// ErrNotLoaded says that the pin path holds no cgrstat load.
var ErrNotLoaded = errors.New("cgrstat is not loaded")

// Pin layout below the pin path.
const (
	mapsDir  = "maps"
	progsDir = "progs"
	linksDir = "links"
	// CgroupsDir holds the per-cgroup stat files (package pin).
	CgroupsDir = "cgroups"
)

var (
	// info comes first: once anything is pinned, the pin path is a verifiable
	// load that unload can remove, even if load was killed half way.
	pinnedMaps     = []string{"info", "pcpu_stats", "totals", "reclaim_start", "sessions", "lost", "tree_nodes"}
	pinnedPrograms = []string{"dump", "tree"}
	pinnedLinks    = []string{"vmscan_start", "vmscan_end", "flush_fentry", "flush_kprobe"}
)

func (l *loaded) pin(pinPath string, rec *Record) (err error) {
	created, err := mkdirOwn(pinPath)
	if err != nil {
		return err
	}
	var pinned []string
	defer func() {
		if err != nil {
			unpinAll(pinPath, pinned, created)
		}
	}()
	if err := writeRecord(l.coll.Maps["info"], rec); err != nil {
		return err
	}
	pin := func(obj pinner, dir, name string) error {
		path := filepath.Join(pinPath, dir, name)
		if err := pinAt(obj, path); err != nil {
			return err
		}
		pinned = append(pinned, path)
		return nil
	}
	for _, name := range pinnedMaps {
		if err := pin(l.coll.Maps[name], mapsDir, name); err != nil {
			return err
		}
	}
	for _, name := range pinnedPrograms {
		if err := pin(l.coll.Programs[name], progsDir, name); err != nil {
			return err
		}
	}
	for name, lk := range l.links {
		if err := pin(lk, linksDir, name); err != nil {
			return err
		}
	}
	return nil
}

// unpinAll removes what a failed pin made, and nothing else.
func unpinAll(pinPath string, pinned []string, created bool) {
	for _, path := range pinned {
		os.Remove(path)
	}
	for _, dir := range []string{mapsDir, progsDir, linksDir} {
		os.Remove(filepath.Join(pinPath, dir)) // only if empty
	}
	if created {
		os.Remove(pinPath)
	}
}

type pinner interface{ Pin(string) error }

func pinAt(obj pinner, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := obj.Pin(path); err != nil {
		return fmt.Errorf("pinning %s: %w", path, err)
	}
	return nil
}

// mkdirOwn creates the pin path, reporting whether it did, so that a failed
// load removes only a directory it made.
func mkdirOwn(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return false, fmt.Errorf("creating pin path: %w", err)
	}
	return true, nil
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf when the pin path needs it there.
func ensureBPFFS(pinPath string) error {
	dir := existingParent(pinPath)
	if isBPFFS(dir) {
		return nil
	}
	const std = "/sys/fs/bpf"
	if !strings.HasPrefix(filepath.Clean(pinPath)+"/", std+"/") {
		return exitcode.UsageErr(fmt.Errorf("pin path %s is not on a bpf filesystem", pinPath))
	}
	if err := unix.Mount("bpf", std, "bpf", 0, "mode=0700"); err != nil {
		return exitcode.UsageErr(fmt.Errorf("mounting bpffs at %s: %w", std, err))
	}
	return nil
}

func existingParent(path string) string {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || p == "/" {
			return p
		}
	}
}

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}

// ReadRecord reads what the load at pinPath recorded, after verifying that
// it is a cgrstat load. It returns ErrNotLoaded when nothing is loaded there,
// and an error wrapping ErrNotALoad or ErrBadPinPath when the pin path holds
// something else.
func ReadRecord(pinPath string) (*Record, error) { return verify(pinPath) }

// Pinned is an open handle on a load.
type Pinned struct {
	Record *Record
	Dump   *ebpf.Program
	Tree   *ebpf.Program
	Totals *ebpf.Map
	Nodes  *ebpf.Map
	Pcpu   *ebpf.Map
	Lost   *ebpf.Map
	Path   string
}

// Open opens the load pinned at pinPath.
func Open(pinPath string) (*Pinned, error) {
	rec, err := ReadRecord(pinPath)
	if err != nil {
		return nil, err
	}
	p := &Pinned{Record: rec, Path: pinPath}
	for name, prog := range map[string]**ebpf.Program{"dump": &p.Dump, "tree": &p.Tree} {
		if *prog, err = ebpf.LoadPinnedProgram(filepath.Join(pinPath, progsDir, name), nil); err != nil {
			p.Close()
			return nil, fmt.Errorf("opening pinned program %s: %w", name, err)
		}
	}
	for name, m := range map[string]**ebpf.Map{"totals": &p.Totals, "pcpu_stats": &p.Pcpu, "lost": &p.Lost, "tree_nodes": &p.Nodes} {
		if *m, err = ebpf.LoadPinnedMap(filepath.Join(pinPath, mapsDir, name), nil); err != nil {
			p.Close()
			return nil, fmt.Errorf("opening pinned map %s: %w", name, err)
		}
	}
	return p, nil
}

// Close releases the handle; the pins stay.
func (p *Pinned) Close() {
	for _, prog := range []*ebpf.Program{p.Dump, p.Tree} {
		if prog != nil {
			prog.Close()
		}
	}
	for _, m := range []*ebpf.Map{p.Totals, p.Pcpu, p.Lost, p.Nodes} {
		if m != nil {
			m.Close()
		}
	}
}

// Unload removes every pin of the load at pinPath, stat files included, and
// waits until the kernel has freed the programs it recorded. It removes only
// what a load pins, and only after verifying that pinPath holds one.
func Unload(pinPath string) (*Record, error) {
	rec, err := ReadRecord(pinPath)
	if errors.Is(err, ErrNotLoaded) {
		removeSkeleton(pinPath)
	}
	if err != nil {
		return nil, err
	}
	if err := removeLoad(pinPath); err != nil {
		return rec, err
	}
	return rec, waitFreed(rec.ProgramIDs)
}

// waitFreed polls because programs are freed after an RCU grace period.
func waitFreed(ids []ebpf.ProgramID) error {
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				break
			}
			p.Close()
			if time.Now().After(deadline) {
				return fmt.Errorf("program %d is still loaded: something else holds a reference to it", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}
