package cgtree

import (
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// Teardown removes a tree with everything a load keeps about it: its stat
// files, its processes (with kill), the cgroups, and its map entries after
// a last flush that hands its totals to the parent. p is nil when nothing
// is loaded.
// It returns how many cgroups it removed (Destroy).
func Teardown(t Tree, p *loader.Pinned, kill bool) (removed int, err error) {
	var ids []uint64
	for _, c := range t.Cgroups() {
		if id, err := cgroup.ID(c); err == nil {
			ids = append(ids, id)
		}
	}
	if p != nil && t.Top().Exists() {
		if _, err := reclaim.Flush(p, t.Top()); err != nil {
			return 0, err
		}
	}
	if removed, err = Destroy(t, kill); err != nil {
		return removed, err
	}
	if p == nil {
		return removed, nil
	}
	pin.UnpinEach(p.Path, t.Cgroups())
	return removed, reclaim.Forget(p, ids)
}
