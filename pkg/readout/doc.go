// Package readout is the read side of a load: the only package that opens
// a load at its pin path and reads its maps. It holds the open handle
// (Handle, whose BPF objects are unexported), the pin path's locks
// (lock.go), the consistent copy of the stats map (the flush_seq retry,
// copy.go), the tree walk (walk.go), the load's health (health.go), and
// the one snapshot that read, serve, watch and status show (snapshot.go).
// Package loader loads, attaches, pins and unloads; everything that reads
// goes through here, and nothing outside loader and readout imports
// cilium/ebpf (TestOneReadSide).
//
// One name per concept, across cgrstat:
//
//   - load: the programs and maps loader.Load loads and pins at one pin
//     path. Its load record (loader.Record, the info map) says how: flush
//     mode, kernel, layout, program ids.
//   - Handle: this process's open handle on a load (Open).
//   - collectors: the BPF programs on the reclaim tracepoints that time
//     every reclaim. (exporter.Collector is Prometheus's word for what
//     gathers metrics, and means that only there.)
//   - flush: rstat folding per-CPU deltas up the tree, done by the BPF flush
//     routine. Flush mode (loader.Mode: fentry, kprobe or walk) is how a
//     load flushes; Handle.Flush flushes one subtree (stress, before it
//     removes a scratch cgroup).
//   - stat file: a cgroup iterator of the dump program pinned under the pin
//     path for one cgroup; cat flushes and prints it. Pinning is only ever
//     the bpffs act (pin, PinStatFile); loader.PinDir.StatFileCgroups lists
//     the cgroups that have one.
//   - walk: the tree iterator over a subtree (Handle.Members), which names
//     its cgroups and reads the kernel's figures into the tree map. Walk
//     mode is the flush mode where a stat file's iterator flushes.
//   - consistent copy: the stats map copied while no flush step ran
//     (Handle.CopyStats, the flush_seq retry).
//   - Snapshot: one read of a load (Handle.Snapshot, Source.Read): when,
//     how long, rows and health. Row: one cgroup of it, its Stat (package
//     reclaim's model of one cgroup's numbers) with its parent and depth.
//     Health: the load's state beside the numbers (fill, memory, lost
//     counters, flush mode, skipped stat files). Query and Filter: what a
//     snapshot reads and keeps.
//   - Observe: add one reclaim to a Stat, as the BPF side does (tests).
//   - seed: the Linux BPF selftest cgrstat grew from. The seed's line and
//     counters are its stat file's first line (memory-cgroup reclaim's
//     delay, count and pages), the seed hierarchy its cgroup tree (the
//     default spec), the seed-style baseline its collectors (bench).
package readout
