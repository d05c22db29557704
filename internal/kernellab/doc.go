// Package kernellab runs Go test binaries on real Debian kernels in QEMU.
//
// FetchKernel takes a suite's current cloud kernel from the Debian archive
// the machine's apt already uses, with a private apt state in a cache.
// BuildInitramfs packs busybox, an init script and the test binaries into an
// initramfs; its init prepares cgroup2 with the memory controller, bpffs and
// tracefs, runs every binary, and prints one result line. Boot runs the
// guest under QEMU and turns that line, or its absence, into an error: a
// failed test, a kernel panic, a hang and a guest that never reported all
// fail the run.
package kernellab
