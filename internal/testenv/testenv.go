// Package testenv decides whether a test can run on this machine's kernel.
//
// Tests that need root, BPF or a cgroup hierarchy call these helpers. On an
// ordinary machine a missing prerequisite skips the test with the reason. In
// the kernel lab, where CGRSTAT_REQUIRE_KERNEL=1 is set, the same missing
// prerequisite fails the test: a guest that cannot run them is broken, and a
// skip there would hide it.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// RequireKernelEnv is the variable the kernel lab sets in its guests.
const RequireKernelEnv = "CGRSTAT_REQUIRE_KERNEL"

// Required reports whether missing prerequisites are failures.
func Required() bool { return os.Getenv(RequireKernelEnv) == "1" }

// Skip skips the test with reason, or fails it in the kernel lab.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("prerequisite missing in the kernel lab: %s", reason)
	}
	t.Skip(reason)
}

// Root skips (or fails, see Skip) when the test is not running as root or in
// short mode.
func Root(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode: this test needs a real kernel (make hosttest or make vmtest runs it)")
	}
	if os.Geteuid() != 0 {
		Skip(t, "needs root to load BPF programs and create cgroups")
	}
}
