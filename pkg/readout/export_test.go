package readout

// Paths is paths, for the pure tests of the external test package (whose
// kernel tests need testenv, which imports this package).
var Paths = paths
