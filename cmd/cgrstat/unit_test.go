package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unitFile is the systemd unit the repository ships for serve.
const unitFile = "../../packaging/systemd/cgrstat.service"

// unitPointingAt copies the unit with ExecStart running exe, since
// systemd-analyze verify checks that the command exists.
func unitPointingAt(t *testing.T, exe string) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cgrstat.service")
	body := strings.ReplaceAll(string(b), "/usr/local/bin/cgrstat", exe)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSystemdUnit verifies the unit with systemd-analyze, offline: systemd
// is not PID 1 on the development machine (nor in the kernel lab), so
// systemd-run cannot start it; TestKernelServeUnitCapabilities runs serve
// with the unit's capabilities instead. Any warning fails (verify exits 0
// on an unknown key), and the sandbox must stay rated OK.
func TestSystemdUnit(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	unit := unitPointingAt(t, cliExe(t))
	out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	exposure, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f", exposure)
	if exposure > 3 {
		t.Errorf("exposure %.1f: the unit's hardening regressed (was 2.4, OK)", exposure)
	}
}

// unitCapabilities reads the unit's CapabilityBoundingSet.
func unitCapabilities(t *testing.T) []string {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapabilityBoundingSet=(.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the unit has no CapabilityBoundingSet")
	}
	return strings.Fields(string(m[1]))
}
