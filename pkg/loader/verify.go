package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/bpf"
)

// ErrBadPinPath says that a pin path cannot hold a load at all.
var ErrBadPinPath = errors.New("bad pin path")

// verify proves that d holds a cgrstat load before anything there is
// touched: a directory on bpffs whose maps/info is a BPF map of the type,
// key and value size of cgrstat's info map, holding a record of this layout.
// Names alone prove nothing: any directory can have a "cgroups" child.
func (d PinDir) verify() (*Record, error) {
	fi, err := os.Lstat(d.Path())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, ErrNotLoaded
	case errors.Is(err, fs.ErrPermission) && strings.Contains(filepath.Base(d.Path()), "."):
		return nil, dotted(d.Path()) // bpffs refuses even to look a dotted name up
	case err != nil:
		return nil, fmt.Errorf("pin path %s: %w", d, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("%w: %s is not a directory", ErrBadPinPath, d)
	case !isBPFFS(d.Path()):
		return nil, &ForeignError{d.Path(), "not on a bpf filesystem"}
	}
	info := d.Map(bpf.CgrstatMapInfo)
	if _, err := os.Lstat(info); errors.Is(err, fs.ErrNotExist) {
		if d.isSkeleton() {
			return nil, ErrNotLoaded
		}
		return nil, &ForeignError{d.Path(), "it has no cgrstat load record"}
	}
	m, err := ebpf.LoadPinnedMap(info, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, &ForeignError{d.Path(), "maps/info is not a pinned BPF map: " + err.Error()}
	}
	defer m.Close()
	if err := infoShape(m); err != nil {
		return nil, &ForeignError{d.Path(), "maps/info " + err.Error()}
	}
	rec, err := readRecord(m)
	if err != nil {
		return nil, &ForeignError{d.Path(), err.Error()}
	}
	if rec.Layout != Layout {
		return nil, &ForeignError{d.Path(), fmt.Sprintf("it was pinned with layout %d, this cgrstat uses %d: unload it with the cgrstat that loaded it", rec.Layout, Layout)}
	}
	return rec, nil
}

// infoSpec is the shape of the info map of the embedded object
// (TestInfoSpec compares them). Not read from the object: parsing it took
// 1-4 ms of every command that opens a load, a read of one cgroup included.
var infoSpec = &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 2048, MaxEntries: 1} // struct load_record

// infoShape compares m with the info map of the embedded object.
func infoShape(m *ebpf.Map) error {
	want := infoSpec
	if m.Type() != want.Type || m.KeySize() != want.KeySize || m.ValueSize() != want.ValueSize || m.MaxEntries() != want.MaxEntries {
		return fmt.Errorf("is a %s map with key %d, value %d bytes, %d entries; cgrstat's is a %s map with key %d, value %d, %d entries",
			m.Type(), m.KeySize(), m.ValueSize(), m.MaxEntries(), want.Type, want.KeySize, want.ValueSize, want.MaxEntries)
	}
	return nil
}

// isSkeleton reports whether d holds nothing but empty directories a load
// makes before it pins anything: an empty pin path, or one whose load was
// killed before it pinned its record.
func (d PinDir) isSkeleton() bool {
	entries, err := os.ReadDir(d.Path())
	if err != nil {
		return false
	}
	for _, e := range entries {
		path := filepath.Join(d.Path(), e.Name())
		sub, err := os.ReadDir(path)
		if !e.IsDir() || !slices.Contains(d.objectDirs(), path) || err != nil || len(sub) > 0 {
			return false
		}
	}
	return true
}

// checkNotNested refuses a pin path inside another load's: that load's
// unpin --all and unload would take this one's stat files for its own, and
// unloading the outer load first would leave a directory no command removes.
func checkNotNested(pinPath string) error {
	abs, err := filepath.Abs(pinPath)
	if err != nil {
		return fmt.Errorf("pin path %s: %w", pinPath, err)
	}
	for p := filepath.Dir(abs); p != "/"; p = filepath.Dir(p) {
		if _, err := os.Lstat(PinDir(p).Map(bpf.CgrstatMapInfo)); err == nil {
			return fmt.Errorf("%w: %s lies inside the load at %s; choose a pin path outside it", ErrBadPinPath, pinPath, p)
		}
	}
	return nil
}

// checkNewPinPath refuses a pin path that load could not create: bpffs
// refuses a name with a dot in a directory with permission bits, and a
// regular file is no directory.
func checkNewPinPath(pinPath string) error {
	if fi, err := os.Stat(pinPath); err == nil && !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrBadPinPath, pinPath)
	}
	for p := filepath.Clean(pinPath); p != "/"; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			return nil
		}
		if strings.Contains(filepath.Base(p), ".") {
			return dotted(p)
		}
	}
	return nil
}

func dotted(p string) error {
	return fmt.Errorf("%w: %s: bpffs refuses names with a dot (%q); choose a pin path without one", ErrBadPinPath, p, filepath.Base(p))
}
