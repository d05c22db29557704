package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/internal/testenv"
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
	os.Exit(testenv.Main(m)) // which unloads the shared load (sharedLab)
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
	// Issue 17's exit codes: an unknown shell, a negative number, a depth
	// other than -1 below zero.
	wantUsage(t, `unknown command "powershell2" for "cgrstat completion"`, "completion", "powershell2")
	wantUsage(t, `unknown command "x" for "cgrstat hierarchy"`, "hierarchy", "x")
	wantUsage(t, `did you mean read?`, "reed")
	wantUsage(t, `--max-cgroups "-1": want a number from 1 to 65535`, "load", "--max-cgroups", "-1")
	wantUsage(t, `--interval "5": want a duration`, "watch", "--interval", "5")
	long := "/sys/fs/bpf/" + strings.Repeat("x", 300)
	for _, args := range [][]string{{"status"}, {"load"}, {"unload"}, {"read", "/"}, {"pin", "/"}} {
		r := cli(t, append(args, "--pin-path", long)...)
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || strings.Count(r.stderr, "/sys/fs/bpf/x") != 1 || !strings.Contains(r.stderr, "NAME_MAX") {
			t.Errorf("%v with a 300-byte name in --pin-path: exit %d, %q; want 2 and one line naming the path once", args, r.code, r.stderr)
		}
	}
}

// TestUsageErrorsAsRoot: flags checked once the command runs, which needs
// root, before it starts anything.
func TestUsageErrorsAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the commands refuse to run without root before they check these flags")
	}
	wantUsage(t, `--depth -7: want -1 (every depth) or a depth from 0`, "watch", "--depth", "-7")
	wantUsage(t, `--depth -7: want -1 (every depth) or a depth from 0`, "serve", "--depth", "-7")
	wantUsage(t, "--scratch-dir: stat /nonexistent", "stress", "--scratch-dir", "/nonexistent", "cgrstat-test-no-such-cgroup")
	wantUsage(t, "not a directory", "stress", "--scratch-dir", "/proc/self/status", "cgrstat-test-no-such-cgroup")
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
// removed it when interrupted; the exit status is the shell's for the
// signal (128 + its number), so that scripts tell it from a failure.
func TestInterruptedMessage(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
		want string
	}{
		{interrupted{cleaned: true, sig: syscall.SIGINT}, 130, "cgrstat: interrupted; what this run created is removed\n"},
		{interrupted{cleaned: false, sig: syscall.SIGTERM}, 143, "cgrstat: interrupted\n"},
		{interrupted{}, 130, "cgrstat: interrupted\n"},
		{fmt.Errorf("reading: %w", context.Canceled), 130, "cgrstat: interrupted; what this run created is removed\n"},
	} {
		var b bytes.Buffer
		if code := report(tt.err, &b); code != tt.code || b.String() != tt.want {
			t.Errorf("report(%#v) = %d, %q; want %d, %q", tt.err, code, b.String(), tt.code, tt.want)
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

// TestSignalExitStatus: cgrstat stopped by SIGINT or SIGTERM while it
// waits (here for a pin path's lock another process holds) exits 130 or
// 143, as a shell reports a process the signal killed.
func TestSignalExitStatus(t *testing.T) {
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		ctx, stop := signalContext()
		if err := syscall.Kill(os.Getpid(), tt.sig); err != nil {
			t.Fatal(err)
		}
		<-ctx.Done()
		var sig signalCause
		if !errors.As(context.Cause(ctx), &sig) || sig.sig != tt.sig {
			t.Errorf("%v: cause %v", tt.sig, context.Cause(ctx))
		}
		root := newRootCmd()
		root.AddCommand(&cobra.Command{Use: "wait", PersistentPreRunE: func(*cobra.Command, []string) error { return nil }, RunE: func(cmd *cobra.Command, _ []string) error {
			<-cmd.Context().Done()
			return cmd.Context().Err()
		}})
		var b bytes.Buffer
		if code := report(execute(ctx, root, []string{"wait"}), &b); code != tt.code || b.String() != "cgrstat: interrupted\n" {
			t.Errorf("%v: exit %d, %q; want %d and one line", tt.sig, code, b.String(), tt.code)
		}
		stop()
	}
}

// TestErrorsAreEscaped: a message that quotes a hostile cgroup name
// reaches stderr escaped, one line per joined error.
func TestErrorsAreEscaped(t *testing.T) {
	var b bytes.Buffer
	err := errors.Join(fmt.Errorf("cgroup %s: no such cgroup", "a\x1b[2J\x1b[31mb"), errors.New("second\nline"))
	if code := report(err, &b); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	want := "cgrstat: cgroup a\\x1b[2J\\x1b[31mb: no such cgroup\ncgrstat: second\\x0aline\n"
	if b.String() != want {
		t.Errorf("stderr %q, want %q", b.String(), want)
	}
}
