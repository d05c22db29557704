package cgroup

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// kernfsHandle is the file handle type of kernfs (FILEID_KERNFS): its 8
// bytes are the node's id, which for a cgroup is its cgroup id, the
// directory's inode number (what ID returns and BPF's cgroup ids are).
const kernfsHandle = 0xfe

// fromTask looks for id in the memory cgroup of task pid and its
// ancestors: /proc/PID/cgroup names the cgroup without any capability,
// checked by the ids of the directories.
func (h *Hierarchy) fromTask(id uint64, pid int) (string, bool) {
	lines, err := readSelfCgroup("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", false
	}
	l, ok := h.memoryLine(lines)
	if !ok {
		return "", false
	}
	root := h.mountRoot
	if root == "" {
		root = "/"
	}
	for p := relativeToMount(l.path, root); ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(h.Mount, p), &st) == nil && st.Ino == id {
			return p, true
		}
		if p == "/" {
			return "", false
		}
	}
}

// byHandle opens the cgroup by its kernfs file handle and reads its path:
// needs CAP_DAC_READ_SEARCH (which cgrstat's systemd unit and container
// do not grant).
func (h *Hierarchy) byHandle(id uint64) (string, error) {
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
