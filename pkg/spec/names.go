package spec

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// MaxNameLen is the kernel's NAME_MAX: a cgroup is a directory.
const MaxNameLen = 255

// controllerPrefixes are the "<controller>." prefixes of cgroup v1 and v2
// interface files. A child cgroup named like one would collide with (or be
// mistaken for) a control file of its parent.
var controllerPrefixes = []string{
	"cgroup.", "memory.", "cpu.", "cpuacct.", "cpuset.", "io.", "blkio.",
	"pids.", "hugetlb.", "rdma.", "misc.", "devices.", "freezer.",
	"net_cls.", "net_prio.", "perf_event.",
}

// reservedNames are cgroup v1 files without a controller prefix, plus
// vmscan.stat, the name under which cgrstat pins its per-cgroup stats.
var reservedNames = map[string]bool{
	"tasks": true, "notify_on_release": true, "release_agent": true,
	"vmscan.stat": true,
}

// ValidateName reports why name cannot be used as a cgroup directory name
// in a spec, or nil if it can.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not allowed", name)
	case strings.ContainsRune(name, '/'):
		return fmt.Errorf("name %q contains '/'", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("name %q contains a NUL byte", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		// A newline would break the lines of /proc/<pid>/cgroup.
		return fmt.Errorf("name %q contains a control character", name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("name %.32q... is %d bytes, longer than %d", name, len(name), MaxNameLen)
	case reservedNames[name]:
		return fmt.Errorf("name %q is reserved (cgroup interface file)", name)
	}
	for _, p := range controllerPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("name %q starts with %q and would collide with cgroup control files", name, p)
		}
	}
	return nil
}
