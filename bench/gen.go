package main

// The reference collectors (baseline.c) are built like bpf/: `make generate`
// rebuilds baseline_{x86,arm64}_bpfel.{go,o} with clang-19 and libbpf-dev; both are
// committed so that `go run ./bench` needs only Go.
//go:generate go tool bpf2go -target amd64,arm64 Baseline baseline.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I../bpf
