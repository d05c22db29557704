package readout

import "github.com/cilium/ebpf"

// Paths is paths, for the pure tests of the external test package (whose
// kernel tests need testenv, which imports this package).
var Paths = paths

// Node and DecodeChunk are node and decodeChunk, for the same tests.
type Node = node

var DecodeChunk = decodeChunk

// ReadAll is readAll of a map of uint64 values, its first batch of first
// entries.
func ReadAll(m *ebpf.Map, first int) (keys, vals []uint64, n int, err error) {
	defer func(was int) { firstBatch = was }(firstBatch)
	firstBatch = first
	return readAll[uint64](m, nil, nil)
}
