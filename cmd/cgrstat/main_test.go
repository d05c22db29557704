package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// TestMain lets the test binary stand in for cgrstat when stress re-executes
// itself (/proc/self/exe) to run a child in a cgroup.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == stress.ChildCommand {
		os.Exit(report(execute(context.Background(), newRootCmd(), os.Args[1:]), os.Stderr))
	}
	// The fault-injection tests, serve's and watch's run this binary as
	// cgrstat itself, with main's signal handling, to signal it.
	if os.Getenv(asCgrstatEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

const asCgrstatEnv = "CGRSTAT_TEST_AS_CGRSTAT"

// result is what one in-process run of the CLI printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

func cli(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errOut)
	code := report(execute(context.Background(), root, args), &errOut)
	r := result{out.String(), errOut.String(), code}
	t.Logf("cgrstat %s → %d\n%s%s", strings.Join(args, " "), code, r.stdout, r.stderr)
	return r
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	r := cli(t, args...)
	if r.code != 0 {
		t.Fatalf("cgrstat %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// wantUsage asserts exit status 2 with one line on stderr containing want.
func wantUsage(t *testing.T, want string, args ...string) {
	t.Helper()
	r := cli(t, args...)
	if r.code != 2 {
		t.Fatalf("cgrstat %s: exit %d, want 2", strings.Join(args, " "), r.code)
	}
	if lines := strings.Count(strings.TrimRight(r.stderr, "\n"), "\n"); lines != 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("cgrstat %s: stderr %q, want one line containing %q", strings.Join(args, " "), r.stderr, want)
	}
}

func TestUsageErrors(t *testing.T) {
	wantUsage(t, "unknown command", "frobnicate")
	wantUsage(t, "unknown flag", "read", "--frob")
	wantUsage(t, "[hist json]", "read", "--hist", "--json", "x")
	wantUsage(t, "unknown flush mode", "load", "--flush", "sometimes")
	wantUsage(t, "either CGROUP arguments or --all", "unpin")
	wantUsage(t, "--max-cgroups", "load", "--max-cgroups", "0")
}

func TestBadSpecIsUsageError(t *testing.T) {
	f := t.TempDir() + "/bad.yaml"
	if err := os.WriteFile(f, []byte("name: x\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The spec is parsed before anything touches the kernel, so no root is
	// needed, but the memory hierarchy is looked up first.
	if _, err := cgroup.Detect(""); err != nil {
		t.Skipf("no memory cgroup hierarchy here: %v", err)
	}
	wantUsage(t, "bad.yaml:2", "hierarchy", "create", "-f", f)
}

// TestInterruptedMessage: only commands that make something say that they
// removed it when interrupted.
func TestInterruptedMessage(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{interrupted{cleaned: true}, "cgrstat: interrupted; what this run created is removed\n"},
		{interrupted{cleaned: false}, "cgrstat: interrupted\n"},
	} {
		var b bytes.Buffer
		if code := report(tt.err, &b); code != 1 || b.String() != tt.want {
			t.Errorf("report(%#v) = %d, %q; want 1, %q", tt.err, code, b.String(), tt.want)
		}
	}
	root := newRootCmd()
	for _, path := range [][]string{{"read"}, {"status"}, {"unload"}, {"unpin"}, {"hierarchy", "destroy"}} {
		cmd, _, err := root.Find(path)
		if err != nil || cmd.Annotations[makes] != "" {
			t.Errorf("%v would claim to remove what it made: %v", path, err)
		}
	}
	for _, path := range [][]string{{"load"}, {"pin"}, {"stress"}, {"check"}, {"hierarchy", "create"}} {
		if cmd, _, err := root.Find(path); err != nil || cmd.Annotations[makes] == "" {
			t.Errorf("%v is not marked as removing what it made: %v", path, err)
		}
	}
}
