package readout

import (
	"regexp"

	"github.com/cgrstat/cgrstat/pkg/identity"
)

// DefaultDepth bounds what serve and watch show unless told otherwise. Depth
// 3 reaches every systemd unit (/system.slice/x.service is 2) with one level
// to spare (/user.slice/user-1000.slice/session-2.scope), and every
// Kubernetes pod (/kubepods/burstable/pod<uid>; guaranteed pods are
// /kubepods/pod<uid>), whose number the kubelet bounds (max-pods). Containers
// (depth 4) come and go with restarts and jobs: --depth 4 asks for them.
const DefaultDepth = 3

// Filter selects the cgroups to show.
type Filter struct {
	// Depth is the deepest path depth shown; negative shows every depth.
	Depth int
	// Match, when set, must match the cgroup's path (unanchored).
	Match *regexp.Regexp
	// Select, when set, must match the identity the cgroup's path tells
	// (--match pod=<uid>).
	Select identity.Selector
}

// keep reports whether the cgroup at path, depth components below the
// root, passes the filter; a nil filter keeps every cgroup.
func (f *Filter) keep(path string, depth int) bool {
	if f == nil {
		return true
	}
	if f.Depth >= 0 && depth > f.Depth {
		return false
	}
	if f.Select != nil {
		if id, ok := identity.Parse(path); !f.Select.Match(id, ok) {
			return false
		}
	}
	return f.Match == nil || f.Match.MatchString(path)
}
