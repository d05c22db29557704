// Package pin gives cgroups stat files: cgroup iterators of cgrstat's dump
// program pinned in bpffs, which flush and print the cgroup's hierarchical
// total whenever they are read.
package pin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf/link"

	"github.com/cgrstat/cgrstat/internal/cgroupiter"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// FileName is the name of every stat file.
const FileName = loader.StatFileName

// OrderFor is the iterator order a stat file needs: in walk mode the
// iterator itself flushes the subtree, children first.
func OrderFor(m loader.Mode) cgroupiter.Order {
	if m == loader.Walk {
		return cgroupiter.DescendantsPost
	}
	return cgroupiter.SelfOnly
}

// dirMode is 0 because bpffs refuses names with a dot ("vmscan.stat") in a
// directory with any permission bit set. Root, the only user of the pin
// path, passes through mode-0 directories all the same.
const dirMode = 0

// StatFile is where the stat file of the cgroup at rel lives.
func StatFile(pinPath, rel string) string {
	return loader.PinDir(pinPath).StatFile(rel)
}

// Open creates an unpinned iterator link of the dump program for c;
// reading it flushes and prints c's line. The caller closes it.
func Open(p *loader.Pinned, c cgroup.Cgroup) (*link.Iter, error) {
	return cgroupiter.Open(p.Dump, c, OrderFor(p.Record.Flush))
}

// Pin pins a stat file for c and returns its path. An existing stat file
// for the same path is replaced, since it may belong to a cgroup that was
// removed and created again.
func Pin(p *loader.Pinned, c cgroup.Cgroup) (string, error) {
	it, err := Open(p, c)
	if err != nil {
		return "", err
	}
	defer it.Close()
	path := StatFile(p.Path, c.Rel)
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return "", fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("replacing %s: %w", path, err)
	}
	if err := it.Pin(path); err != nil {
		return "", fmt.Errorf("pinning %s: %w", path, err)
	}
	return path, nil
}

// Unpin removes the stat file of the cgroup at rel, and the directories
// that held only it.
func Unpin(pinPath, rel string) error {
	path := StatFile(pinPath, rel)
	if err := os.Remove(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cgroup %s has no stat file", rel)
	} else if err != nil {
		return fmt.Errorf("unpinning %s: %w", path, err)
	}
	top := loader.PinDir(pinPath).StatFiles()
	for dir := filepath.Dir(path); dir != top && strings.HasPrefix(dir, top); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty: it holds other stat files
		}
	}
	return nil
}

// UnpinAll removes every stat file.
func UnpinAll(pinPath string) error {
	return loader.PinDir(pinPath).RemoveStatFiles()
}

// List returns the cgroups (paths relative to the root) that have a stat file.
func List(pinPath string) ([]string, error) { return loader.PinDir(pinPath).Pinned() }

// All pins a stat file for every cgroup in cgs, all or nothing.
func All(p *loader.Pinned, cgs []cgroup.Cgroup) ([]string, error) {
	var paths []string
	for _, c := range cgs {
		path, err := Pin(p, c)
		if err != nil {
			UnpinEach(p.Path, cgs)
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// UnpinEach removes the stat files of cgs that exist.
func UnpinEach(pinPath string, cgs []cgroup.Cgroup) {
	for _, c := range cgs {
		_ = Unpin(pinPath, c.Rel)
	}
}
