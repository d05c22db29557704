package cgtree

import (
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
)

// Teardown removes a tree with everything a load keeps about it: its stat
// files, its processes (with kill) and the cgroups. The map entries need no
// care: the BPF side hands a removed cgroup's reclaim to its parent at rmdir
// and deletes its entry when the kernel releases it. p is nil when nothing
// is loaded. It returns how many cgroups it removed (Destroy).
func Teardown(t Tree, p *loader.Pinned, kill bool) (removed int, err error) {
	if removed, err = Destroy(t, kill); err != nil {
		return removed, err
	}
	if p != nil {
		pin.UnpinEach(p.Path, t.Cgroups())
	}
	return removed, nil
}
