// Package failing is a guest test binary that must make a kernel lab run
// fail: the harness's own tests boot it and check that it does.
package failing

import "testing"

func TestPasses(t *testing.T) {}

func TestFailsOnPurpose(t *testing.T) {
	t.Fatal("this failure is deliberate")
}
