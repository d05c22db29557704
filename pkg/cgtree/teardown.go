package cgtree

import (
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/pin"
)

// Teardown removes a tree with everything a load keeps about it: its stat
// files, its processes (with kill) and the cgroups. The map entries need no
// care: the BPF side hands a removed cgroup's reclaim to its parent and
// deletes its entry at rmdir. p is nil when nothing is loaded.
func Teardown(t Tree, p *loader.Pinned, kill bool) error {
	if err := Destroy(t, kill); err != nil {
		return err
	}
	if p != nil {
		pin.UnpinEach(p.Path, t.Cgroups())
	}
	return nil
}
