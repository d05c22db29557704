package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// PinDir is the bpffs directory of one load, and the one place that knows
// what lives where below it:
//
//	<dir>/maps/<map>                  pinned maps (the load record is maps/info)
//	<dir>/progs/<program>             programs that stat files and readers use
//	<dir>/links/<program>             links that keep the collectors attached
//	<dir>/cgroups/<cgroup>/vmscan.stat  one stat file per pinned cgroup
type PinDir string

// StatFileName is the name of every stat file.
const StatFileName = "vmscan.stat"

const (
	mapsDir    = "maps"
	progsDir   = "progs"
	linksDir   = "links"
	cgroupsDir = "cgroups"
)

// Path is the directory itself.
func (d PinDir) Path() string { return string(d) }

// Map is where the map called name is pinned.
func (d PinDir) Map(name string) string { return filepath.Join(string(d), mapsDir, name) }

// MapNames are the names of the maps a load pins, sorted.
func MapNames() []string {
	var o objects
	names := make([]string, 0, len(o.maps()))
	for name := range o.maps() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Program is where the program called name is pinned.
func (d PinDir) Program(name string) string { return filepath.Join(string(d), progsDir, name) }

// Link is where the link of the program called name is pinned.
func (d PinDir) Link(name string) string { return filepath.Join(string(d), linksDir, name) }

// StatFiles is the directory that holds every stat file.
func (d PinDir) StatFiles() string { return filepath.Join(string(d), cgroupsDir) }

// StatFile is where the stat file of the cgroup at rel (relative to the
// cgroup root) lives.
func (d PinDir) StatFile(rel string) string {
	return filepath.Join(d.StatFiles(), filepath.Clean("/"+rel), StatFileName)
}

// objectDirs are the directories a load creates for its maps, programs and
// links, in the order they are removed.
func (d PinDir) objectDirs() []string {
	return []string{
		filepath.Join(string(d), linksDir),
		filepath.Join(string(d), progsDir),
		filepath.Join(string(d), mapsDir),
	}
}

// StatFileCgroups returns the cgroups (paths relative to the root) that
// have a stat file, parents before children.
func (d PinDir) StatFileCgroups() ([]string, error) {
	top := d.StatFiles()
	var rels []string
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == top {
			return fs.SkipAll
		}
		if err != nil || d.Name() != StatFileName || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(top, filepath.Dir(path))
		rels = append(rels, filepath.Clean("/"+rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing stat files: %w", err)
	}
	sort.Strings(rels) // parents before children
	return rels, nil
}

// Stale reports whether the cgroup of the stat file at rel was removed
// (its directory below the cgroup root is gone). A stale stat file keeps a
// dead cgroup referenced and reads nothing new: unpin it.
func (d PinDir) Stale(rel, cgroupRoot string) bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, filepath.Clean("/"+rel)))
	return errors.Is(err, fs.ErrNotExist)
}
