package cgroup

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// kernfsHandle is the file handle type of kernfs (FILEID_KERNFS): its 8
// bytes are the node's id, which for a cgroup is its cgroup id, the
// directory's inode number (what ID returns and BPF's cgroup ids are).
const kernfsHandle = 0xfe

// PathOf returns the path, relative to the hierarchy's root as Cgroup.Rel,
// of the cgroup whose id is id, while it exists. The kernel opens it by its
// file handle, so no walk of the tree is needed: an event names a cgroup by
// id, and the cgroup may be gone a moment later. It needs
// CAP_DAC_READ_SEARCH, and a cgroup mounted in this mount namespace.
func (h *Hierarchy) PathOf(id uint64) (string, error) {
	mnt, err := unix.Open(h.Mount, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("cgroup id %d: %w", id, err)
	}
	defer unix.Close(mnt)
	b := make([]byte, 8)
	binary.NativeEndian.PutUint64(b, id)
	fd, err := unix.OpenByHandleAt(mnt, unix.NewFileHandle(kernfsHandle, b), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("cgroup id %d: open_by_handle_at: %w", id, err)
	}
	defer unix.Close(fd)
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("cgroup id %d: %w", id, err)
	}
	if strings.HasSuffix(p, " (deleted)") {
		return "", fmt.Errorf("cgroup id %d: removed", id)
	}
	rel, err := filepath.Rel(h.Mount, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("cgroup id %d: %s is not below %s", id, p, h.Mount)
	}
	return filepath.Clean("/" + rel), nil
}
