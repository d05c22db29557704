package cgtree

import (
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/pin"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// Teardown removes a tree with everything a load keeps about it: its stat
// files, its processes (with kill) and the cgroups. The map entries need no
// care: the BPF side hands a removed cgroup's reclaim to its parent at rmdir
// and deletes its entry when the kernel releases it. p is nil when nothing
// is loaded. It returns what Destroy removed and left; only the stat files
// of removed cgroups go.
func Teardown(t Tree, p *readout.Handle, kill bool) (Removal, error) {
	r, err := Destroy(t, kill)
	if err != nil {
		return r, err
	}
	if p != nil {
		var gone []cgroup.Cgroup
		for _, c := range t.Cgroups() {
			if !c.Exists() {
				gone = append(gone, c)
			}
		}
		pin.UnpinEach(p.Path, gone)
	}
	return r, nil
}
