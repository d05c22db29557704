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
func Teardown(t Tree, p *loader.Pinned, kill bool) error {
	var ids []uint64
	for _, c := range t.Cgroups() {
		if id, err := cgroup.ID(c); err == nil {
			ids = append(ids, id)
		}
	}
	if p != nil && t.Top().Exists() {
		if _, err := reclaim.Flush(p, t.Top()); err != nil {
			return err
		}
	}
	if err := Destroy(t, kill); err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	pin.UnpinEach(p.Path, t.Cgroups())
	return reclaim.Forget(p, ids)
}
