// Package cgroup finds the memory controller's cgroup hierarchy and works
// with the cgroups in it: resolving user paths, ids, walking, creating and
// removing, and the memory control files of cgroup v1 and v2.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Hierarchy is the cgroup hierarchy that carries the memory controller.
type Hierarchy struct {
	// Mount is where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory.
	Mount string
	// Version is 1 or 2.
	Version int
	// V1ID is the hierarchy id of the v1 memory hierarchy, 0 on v2.
	V1ID uint32
	// Own is the caller's memory cgroup, relative to Mount ("/" for the root).
	Own string
	// mountRoot is the cgroup mounted at Mount ("/" unless a bind mount or
	// a cgroup namespace shows a subtree): /proc/PID/cgroup paths are
	// relative to it.
	mountRoot string
}

// ErrNoMemoryController says that no mounted hierarchy has the memory controller.
var ErrNoMemoryController = errors.New("no cgroup hierarchy with the memory controller is mounted")

// Detect finds the memory hierarchy from /proc/self/mountinfo and
// /proc/self/cgroup. A non-empty root overrides the mount point.
func Detect(root string) (*Hierarchy, error) {
	return detect(root, "/proc/self/mountinfo", "/proc/self/cgroup")
}

func detect(root, mountinfo, selfCgroup string) (*Hierarchy, error) {
	mounts, err := readMounts(mountinfo)
	if err != nil {
		return nil, err
	}
	self, err := readSelfCgroup(selfCgroup)
	if err != nil {
		return nil, err
	}
	var h *Hierarchy
	if root != "" {
		h, err = atRoot(root, mounts)
	} else {
		h, err = findMemory(mounts)
	}
	if err != nil {
		return nil, err
	}
	h.setOwn(self, mounts)
	return h, nil
}

type mount struct {
	root, point, fstype string
	superOpts           []string
}

func readMounts(path string) ([]mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	var mounts []mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := parseMountinfo(sc.Text()); ok {
			mounts = append(mounts, m)
		}
	}
	return mounts, sc.Err()
}

// parseMountinfo reads one line of proc(5)'s mountinfo; only cgroup mounts matter.
func parseMountinfo(line string) (mount, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return mount{}, false
	}
	f, g := strings.Fields(pre), strings.Fields(post)
	if len(f) < 5 || len(g) < 3 || !strings.HasPrefix(g[0], "cgroup") {
		return mount{}, false
	}
	return mount{root: unescape(f[3]), point: unescape(f[4]), fstype: g[0],
		superOpts: strings.Split(g[2], ",")}, true
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func findMemory(mounts []mount) (*Hierarchy, error) {
	for _, m := range mounts {
		if m.fstype == "cgroup2" && v2HasMemory(m.point) {
			return &Hierarchy{Mount: m.point, Version: 2}, nil
		}
	}
	for _, m := range mounts {
		if m.fstype == "cgroup" && contains(m.superOpts, "memory") {
			return &Hierarchy{Mount: m.point, Version: 1}, nil
		}
	}
	return nil, ErrNoMemoryController
}

func atRoot(root string, mounts []mount) (*Hierarchy, error) {
	root = filepath.Clean(root)
	for _, m := range mounts {
		if m.point != root {
			continue
		}
		if m.fstype == "cgroup2" && v2HasMemory(root) {
			return &Hierarchy{Mount: root, Version: 2}, nil
		}
		if m.fstype == "cgroup" && contains(m.superOpts, "memory") {
			return &Hierarchy{Mount: root, Version: 1}, nil
		}
		return nil, fmt.Errorf("cgroup root %s: the memory controller is not on this hierarchy", root)
	}
	// The directory the v1 hierarchies are mounted in (/sys/fs/cgroup, or
	// the host's, bind-mounted into a container): its memory hierarchy. So
	// one --cgroup-root, the host's /sys/fs/cgroup, serves v1 and v2 nodes.
	for _, m := range mounts {
		if m.fstype == "cgroup" && filepath.Dir(m.point) == root && contains(m.superOpts, "memory") {
			return &Hierarchy{Mount: m.point, Version: 1}, nil
		}
	}
	return nil, fmt.Errorf("cgroup root %s: not a cgroup mount point", root)
}

func v2HasMemory(point string) bool {
	b, err := os.ReadFile(filepath.Join(point, "cgroup.controllers"))
	return err == nil && contains(strings.Fields(string(b)), "memory")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type selfLine struct {
	id          uint32
	controllers []string
	path        string
}

func readSelfCgroup(path string) ([]selfLine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading own cgroups: %w", err)
	}
	var lines []selfLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		id, err := strconv.ParseUint(parts[0], 10, 32)
		if err != nil {
			continue
		}
		lines = append(lines, selfLine{uint32(id), strings.Split(parts[1], ","), parts[2]})
	}
	return lines, nil
}

// setOwn finds the caller's memory cgroup, made relative to the mount's root.
func (h *Hierarchy) setOwn(self []selfLine, mounts []mount) {
	h.Own = "/"
	h.mountRoot = mountRoot(h.Mount, mounts)
	if l, ok := h.memoryLine(self); ok {
		h.V1ID = l.id
		h.Own = relativeToMount(l.path, h.mountRoot)
	}
}

// memoryLine is the line of a /proc/PID/cgroup that names the memory
// hierarchy's cgroup.
func (h *Hierarchy) memoryLine(lines []selfLine) (selfLine, bool) {
	var found selfLine
	ok := false
	for _, l := range lines {
		if h.Version == 2 && l.id == 0 || h.Version == 1 && contains(l.controllers, "memory") {
			found, ok = l, true
		}
	}
	return found, ok
}

func mountRoot(point string, mounts []mount) string {
	for _, m := range mounts {
		if m.point == point {
			return m.root
		}
	}
	return "/"
}

func relativeToMount(p, root string) string {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "/"
	}
	return filepath.Clean("/" + rel)
}
