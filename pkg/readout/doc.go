// Package readout is the read side of a load: the only package that opens
// a load at its pin path and reads its maps. It holds the open handle
// (Handle, whose BPF objects are unexported), the pin path's locks
// (lock.go), the consistent copy of the stats map (the flush_seq retry,
// copy.go), the tree walk (walk.go) and the load's health: map fill, lost
// counters, flush mode and load record (health.go). Package loader loads,
// attaches, pins and unloads; everything that reads goes through here.
package readout
