package readout

// Paths is paths, for the pure tests of the external test package (whose
// kernel tests need testenv, which imports this package).
var Paths = paths

// Node and DecodeChunk are node and decodeChunk, for the same tests.
type Node = node

var DecodeChunk = decodeChunk
