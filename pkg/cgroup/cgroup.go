package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Cgroup is one cgroup of a Hierarchy.
type Cgroup struct {
	// Rel is the path relative to the hierarchy's root, "/" for the root.
	Rel string
	// Path is the absolute path of the cgroup's directory.
	Path string
}

// Cgroup returns the cgroup at rel, a path relative to the root.
func (h *Hierarchy) Cgroup(rel string) Cgroup {
	rel = filepath.Clean("/" + rel)
	return Cgroup{Rel: rel, Path: filepath.Join(h.Mount, rel)}
}

// DefaultParent is where cgrstat creates hierarchies when not told: the root
// on v2, and on v1 the caller's own memory cgroup, so that nothing is moved
// out of the cgroup its supervisor chose.
func (h *Hierarchy) DefaultParent() Cgroup {
	if h.Version == 1 {
		return h.Cgroup(h.Own)
	}
	return h.Cgroup("/")
}

// Resolve turns a user's CGROUP argument into a cgroup that exists. It takes
// a path relative to the root ("test/a" or "/test/a") or an absolute path
// under the mount.
//
// On v1 cgrstat builds trees below the caller's own memory cgroup, so there a
// relative path without a leading slash ("test/a") that does not exist below
// the root is looked up below the caller's cgroup too: the README's
// "read --all test" then works as written on v1 and v2.
func (h *Hierarchy) Resolve(arg string) (Cgroup, error) {
	cands, err := h.Candidates(arg)
	if err != nil {
		return Cgroup{}, err
	}
	for _, rel := range cands[1:] {
		if c := h.Cgroup(rel); c.Exists() && !h.Cgroup(cands[0]).Exists() {
			return c, nil
		}
	}
	c := h.Cgroup(cands[0])
	fi, err := os.Stat(c.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return Cgroup{}, fmt.Errorf("cgroup %s: no such cgroup under %s", Show(arg), h.Mount)
	case err != nil: // the error's path would repeat the argument
		return Cgroup{}, fmt.Errorf("cgroup %s: %w", Show(arg), unwrapPath(err))
	case !fi.IsDir():
		return Cgroup{}, fmt.Errorf("cgroup %s: not a cgroup directory", Show(arg))
	}
	return c, nil
}

// Candidates returns where a CGROUP argument may be, relative to the root:
// the argument itself, and on v1, for a relative path without a leading
// slash, the same below the caller's own cgroup.
func (h *Hierarchy) Candidates(arg string) ([]string, error) {
	rel, err := h.Relative(arg)
	if err != nil {
		return nil, err
	}
	cands := []string{rel}
	if h.Version == 1 && h.Own != "/" && !strings.HasPrefix(arg, "/") {
		cands = append(cands, filepath.Join(h.Own, rel))
	}
	return cands, nil
}

// Show prints a user's path for a one-line message, shortened when it is
// long. It does not escape: every message reaches the terminal through
// cmd's report, which escapes it whole (escape.String), and escaping here
// too would double every backslash.
func Show(arg string) string {
	const keep = 64
	if len(arg) <= keep {
		return arg
	}
	cut := keep
	for cut > 0 && !utf8.RuneStart(arg[cut]) {
		cut--
	}
	return arg[:cut] + fmt.Sprintf("... (%d bytes)", len(arg))
}

// Relative checks a CGROUP argument and returns it relative to the root,
// without requiring the cgroup to exist.
func (h *Hierarchy) Relative(arg string) (string, error) {
	if arg == "" {
		return "", errors.New("empty cgroup path")
	}
	if strings.ContainsRune(arg, 0) {
		return "", fmt.Errorf("cgroup %s: path contains a NUL byte", Show(arg))
	}
	if arg == h.Mount || strings.HasPrefix(arg, h.Mount+"/") {
		arg = strings.TrimPrefix(arg, h.Mount)
	} else if strings.HasPrefix(arg, "/sys/fs/cgroup") {
		return "", fmt.Errorf("cgroup %s: outside the memory hierarchy at %s", Show(arg), h.Mount)
	}
	depth := 0
	for _, part := range strings.Split(arg, "/") {
		switch part {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return "", fmt.Errorf("cgroup %s: escapes the cgroup root %s", Show(arg), h.Mount)
			}
		default:
			depth++
		}
	}
	return filepath.Clean("/" + arg), nil
}

// ID returns the cgroup id, which is the inode number of its directory; the
// BPF programs read the same number from kernfs_node.id.
func ID(c Cgroup) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(c.Path, &st); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", c.Rel, err)
	}
	return st.Ino, nil
}

// Child returns the cgroup name below c.
func (c Cgroup) Child(name string) Cgroup {
	return Cgroup{Rel: filepath.Join(c.Rel, name), Path: filepath.Join(c.Path, name)}
}

// Walk calls fn for c and every cgroup below it, parents before children.
func Walk(c Cgroup, fn func(Cgroup) error) error {
	if err := fn(c); err != nil {
		return err
	}
	names, err := c.Children()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := Walk(c.Child(name), fn); err != nil {
			return err
		}
	}
	return nil
}
