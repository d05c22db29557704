package loader

import (
	"os"

	"golang.org/x/sys/unix"
)

// Capable reports whether this process may load and read cgrstat: it is
// root, or it holds CAP_BPF and CAP_PERFMON in its effective set. The
// latter is a non-root container whose binary got them from its file
// capabilities (see internal/ociimage): runtimes put a non-root
// container's added capabilities in its bounding set only, and the kernel
// grants the file's capabilities within that set at exec.
func Capable() bool {
	if os.Geteuid() == 0 {
		return true
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(unix.CAP_BPF) && has(unix.CAP_PERFMON)
}
