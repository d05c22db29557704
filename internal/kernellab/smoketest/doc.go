// Package smoketest holds the kernel lab's permanent sanity test: whatever
// else changes, every kernel in the matrix must load a BPF program, run it,
// and give cgrstat a cgroup v2 hierarchy with the memory controller.
package smoketest
