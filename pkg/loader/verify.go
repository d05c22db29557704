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
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
)

// ErrNotALoad says that a pin path holds something that is not a cgrstat
// load. cgrstat never removes or changes anything there.
var ErrNotALoad = errors.New("not a cgrstat load")

// ErrBadPinPath says that a pin path cannot hold a load at all.
var ErrBadPinPath = errors.New("bad pin path")

// NotALoadError says why a pin path is not a load.
type NotALoadError struct {
	Path string
	Why  string
}

func (e *NotALoadError) Error() string {
	return fmt.Sprintf("pin path %s is %s (%s); cgrstat leaves it alone: give the --pin-path of a cgrstat load", e.Path, ErrNotALoad, e.Why)
}

func (e *NotALoadError) Is(target error) bool { return target == ErrNotALoad }

func notALoad(path, why string) error {
	return &NotALoadError{Path: path, Why: why}
}

// verify proves that pinPath holds a cgrstat load before anything there is
// touched: a directory on bpffs whose maps/info is a BPF map of the type, key
// and value size of cgrstat's info map, holding a record of this layout.
// Names alone prove nothing: any directory can have a "cgroups" child.
func verify(pinPath string) (*Record, error) {
	fi, err := os.Lstat(pinPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, ErrNotLoaded
	case errors.Is(err, fs.ErrPermission) && strings.Contains(filepath.Base(pinPath), "."):
		return nil, dotted(pinPath) // bpffs refuses even to look a dotted name up
	case err != nil:
		return nil, fmt.Errorf("pin path %s: %w", pinPath, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("%w: %s is not a directory", ErrBadPinPath, pinPath)
	case !isBPFFS(pinPath):
		return nil, notALoad(pinPath, "not on a bpf filesystem")
	}
	infoPath := filepath.Join(pinPath, mapsDir, "info")
	if _, err := os.Lstat(infoPath); errors.Is(err, fs.ErrNotExist) {
		if isSkeleton(pinPath) {
			return nil, ErrNotLoaded
		}
		return nil, notALoad(pinPath, "it has no maps/info")
	}
	m, err := ebpf.LoadPinnedMap(infoPath, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, notALoad(pinPath, "maps/info is not a pinned BPF map: "+strings.TrimPrefix(err.Error(), "pin path: "))
	}
	defer m.Close()
	if err := infoShape(m); err != nil {
		return nil, notALoad(pinPath, "maps/info "+err.Error())
	}
	rec, err := readRecord(m)
	if err != nil {
		return nil, notALoad(pinPath, err.Error())
	}
	if rec.Layout != Layout {
		return nil, notALoad(pinPath, fmt.Sprintf("it was pinned with layout %d, this cgrstat uses %d: unload it with the cgrstat that loaded it", rec.Layout, Layout))
	}
	return rec, nil
}

// skeletonDirs are the directories a load makes before it pins anything.
var skeletonDirs = []string{mapsDir, progsDir, linksDir}

// isSkeleton reports whether pinPath holds nothing but empty directories a
// load makes first: an empty pin path, or one whose load was killed before
// it pinned anything.
func isSkeleton(pinPath string) bool {
	entries, err := os.ReadDir(pinPath)
	if err != nil {
		return false
	}
	for _, e := range entries {
		sub, err := os.ReadDir(filepath.Join(pinPath, e.Name()))
		if !e.IsDir() || !slices.Contains(skeletonDirs, e.Name()) || err != nil || len(sub) > 0 {
			return false
		}
	}
	return true
}

// removeSkeleton removes the empty directories a killed load left, and the
// pin path that held them. rmdir removes nothing that is not empty; an empty
// pin path with no such directory may be the user's and stays.
func removeSkeleton(pinPath string) {
	if entries, err := os.ReadDir(pinPath); err != nil || len(entries) == 0 || !isSkeleton(pinPath) {
		return
	}
	for _, d := range skeletonDirs {
		_ = unix.Rmdir(filepath.Join(pinPath, d))
	}
	_ = unix.Rmdir(pinPath)
}

// infoShape compares m with the info map of the embedded object.
func infoShape(m *ebpf.Map) error {
	spec, err := bpf.LoadCgrstat()
	if err != nil {
		return err
	}
	want := spec.Maps["info"]
	if m.Type() != want.Type || m.KeySize() != want.KeySize || m.ValueSize() != want.ValueSize || m.MaxEntries() != want.MaxEntries {
		return fmt.Errorf("is a %s map with key %d, value %d bytes, %d entries; cgrstat's is a %s map with key %d, value %d, %d entries",
			m.Type(), m.KeySize(), m.ValueSize(), m.MaxEntries(), want.Type, want.KeySize, want.ValueSize, want.MaxEntries)
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

// removeLoad removes what a load pins, and nothing else: the known maps,
// programs and links, the stat files below cgroups and the directories
// that held them, then the pin path itself if that leaves it empty.
func removeLoad(pinPath string) error {
	var errs []error
	rm := func(path string) {
		if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing %s: %w", path, err))
		}
	}
	// Stat files first: each holds a link that keeps the dump program alive.
	if err := removeStatFiles(filepath.Join(pinPath, CgroupsDir)); err != nil {
		errs = append(errs, err)
	}
	for _, name := range pinnedLinks {
		rm(filepath.Join(pinPath, linksDir, name))
	}
	for _, name := range pinnedPrograms {
		rm(filepath.Join(pinPath, progsDir, name))
	}
	for _, name := range pinnedMaps {
		rm(filepath.Join(pinPath, mapsDir, name))
	}
	for _, dir := range []string{linksDir, progsDir, mapsDir, CgroupsDir, ""} {
		if err := unix.Rmdir(filepath.Join(pinPath, dir)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("%s holds more than cgrstat pinned, left in place: %w", filepath.Join(pinPath, dir), err))
		}
	}
	return errors.Join(errs...)
}

// RemoveStatFiles removes every stat file of the load at pinPath (files named
// vmscan.stat below cgroups) and the directories that become empty, leaves
// first, after verifying that pinPath holds a load. Nothing else is removed:
// a directory holding anything more stays.
func RemoveStatFiles(pinPath string) error {
	if _, err := verify(pinPath); err != nil {
		return err
	}
	return removeStatFiles(filepath.Join(pinPath, CgroupsDir))
}

func removeStatFiles(top string) error {
	var dirs []string
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist) && path == top:
			return fs.SkipAll
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, path)
		case d.Name() == StatFileName:
			if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("removing %s: %w", path, err)
			}
		}
		return nil
	})
	for i := len(dirs) - 1; i > 0; i-- { // top itself is the caller's
		_ = unix.Rmdir(dirs[i]) // fails when it holds anything else
	}
	return err
}

// StatFileName is the name of every stat file below <pin-path>/cgroups.
const StatFileName = "vmscan.stat"
