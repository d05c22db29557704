package main

import (
	"os"
	"strings"
	"testing"
)

// TestCompletion: cobra's completion scripts, and flag values completed.
func TestCompletion(t *testing.T) {
	if out := mustCLI(t, "completion", "bash"); !strings.Contains(out, "__start_cgrstat") {
		t.Errorf("completion bash is not a bash completion script")
	}
	out := mustCLI(t, "__complete", "watch", "--sort", "")
	for _, k := range []string{"stall", "reclaims", "pages", "p99", "path"} {
		if !strings.Contains(out, k+"\n") {
			t.Errorf("watch --sort does not complete %s:\n%s", k, out)
		}
	}
	if out := mustCLI(t, "__complete", "serve", "--flush", ""); !strings.Contains(out, "walk\n") {
		t.Errorf("serve --flush does not complete walk:\n%s", out)
	}
}

// TestMonitorUsageErrors: serve and watch refuse bad input in one line,
// before loading anything.
func TestMonitorUsageErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: without it every command stops at the root check first")
	}
	pin := "--pin-path=/sys/fs/bpf/cgrstat-test-never-made"
	wantUsage(t, "--match", "serve", "--match", "(", pin)
	wantUsage(t, "--web.config.file", "serve", "--web.config.file", "/nonexistent/web.yml", pin)
	wantUsage(t, "--web.listen-address", "serve", "--web.listen-address", "256.0.0.1:1", pin)
	wantUsage(t, "unknown sort key", "watch", "--sort", "cpu", pin)
	wantUsage(t, "--interval must be positive", "watch", "--interval", "0s", pin)
	wantUsage(t, "unknown flush mode", "watch", "--flush", "sometimes", pin)
	if _, err := os.Stat("/sys/fs/bpf/cgrstat-test-never-made"); err == nil {
		t.Error("a refused serve or watch left its pin path")
	}
}
