// Package pin gives cgroups stat files: cgroup iterators of cgrstat's dump
// program pinned in bpffs, which flush and print the cgroup's hierarchical
// total whenever they are read.
package pin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// FileName is the name of every stat file.
const FileName = loader.StatFileName

// StatFile is where the stat file of the cgroup at rel lives.
func StatFile(pinPath, rel string) string {
	return loader.PinDir(pinPath).StatFile(rel)
}

// Pin pins a stat file for c and returns its path. An existing stat file
// for the same path is replaced, since it may belong to a cgroup that was
// removed and created again.
func Pin(h *readout.Handle, c cgroup.Cgroup) (string, error) {
	path := StatFile(h.Path, c.Rel)
	if err := h.PinStatFile(c, path); err != nil {
		return "", err
	}
	return path, nil
}

// ErrNoStatFile says that a cgroup has no stat file.
var ErrNoStatFile = errors.New("no stat file")

// Unpin removes the stat file of the cgroup at rel, and the directories
// that held only it.
func Unpin(pinPath, rel string) error {
	path := StatFile(pinPath, rel)
	err := os.Remove(path)
	// Prune in any case: a pin killed half way leaves the directories without the file.
	top := loader.PinDir(pinPath).StatFiles()
	for dir := filepath.Dir(path); dir != top && strings.HasPrefix(dir, top); dir = filepath.Dir(dir) {
		if unix.Rmdir(dir) != nil {
			break // not empty: it holds other stat files
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cgroup %s: %w", rel, ErrNoStatFile)
	case err != nil:
		return fmt.Errorf("unpinning %s: %w", path, err)
	}
	return nil
}

// UnpinAll removes every stat file of the load at pinPath, and nothing
// else; a pin path that holds no load is an error.
func UnpinAll(pinPath string) error {
	dir := loader.PinDir(pinPath)
	if _, err := dir.Record(); err != nil {
		return err
	}
	return dir.RemoveStatFiles()
}

// List returns the cgroups (paths relative to the root) that have a stat file.
func List(pinPath string) ([]string, error) { return loader.PinDir(pinPath).StatFileCgroups() }

// All pins a stat file for every cgroup in cgs, all or nothing: on error,
// or when ctx ends, it removes the ones it made.
func All(ctx context.Context, p *readout.Handle, cgs []cgroup.Cgroup) ([]string, error) {
	var paths []string
	for _, c := range cgs {
		path, err := Pin(p, c)
		if err == nil {
			err = ctx.Err()
		}
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
