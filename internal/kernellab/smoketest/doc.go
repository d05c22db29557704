// Package smoketest holds the kernel lab's permanent sanity test: whatever
// else changes, every kernel in the matrix must load a BPF program, run it,
// and give cgrstat a memory cgroup hierarchy (v2, or v1 where the lab mounts it).
package smoketest
