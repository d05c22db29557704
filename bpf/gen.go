// Package bpf holds cgrstat's BPF object, compiled from cgrstat.c by bpf2go.
//
// The generated files are committed so that `go build` needs only Go;
// `make generate` rebuilds them (clang-19, libbpf-dev).
package bpf

//go:generate go tool bpf2go -target amd64,arm64 -type counters -type cause_counters -type cgstat -type throttle_stat -type throttle_counters -type flush_seq -type lost_counter -type tree_node -type tree_chunk -type memcg_figures -type trace_slot -type trace_event Cgrstat cgrstat.c -- -mcpu=v3 -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
