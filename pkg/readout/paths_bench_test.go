package readout_test

import (
	"fmt"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/readout"
)

// BenchmarkPaths orders a walk of 10,000 cgroups (fan-out 10, pre-order).
func BenchmarkPaths(b *testing.B) {
	nodes := []readout.Node{{ID: 1, Parent: 0, Name: "top"}}
	var add func(parent uint64, depth int)
	add = func(parent uint64, depth int) {
		for k := 0; k < 10 && len(nodes) < 10000; k++ {
			id := uint64(len(nodes) + 1)
			nodes = append(nodes, readout.Node{ID: id, Parent: parent, Name: fmt.Sprintf("c%d", 9-k)})
			if depth < 4 {
				add(id, depth+1)
			}
		}
	}
	add(1, 1)
	for b.Loop() {
		readout.Paths(nodes, "/top")
	}
}
