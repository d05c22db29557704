package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/syncbuf"
)

// cliExe is the test binary, which is cgrstat with asCgrstatEnv=1 in its environment.
func cliExe(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// cliProc is cgrstat running as a process of its own, the test keeping
// an eye on it.
type cliProc struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	done   chan struct{}
	err    error
}

// startCLI starts cgrstat with args; the test's cleanup kills it if the
// test did not stop it.
func startCLI(t *testing.T, args ...string) *cliProc {
	t.Helper()
	return startCLIWith(t, cliExe(t), args...)
}

// startCLIWith starts a program that runs cgrstat (setpriv, for one).
func startCLIWith(t *testing.T, exe string, args ...string) *cliProc {
	t.Helper()
	return startCLIOut(t, nil, exe, args...)
}

// startCLIOut is startCLIWith with the program's stdout going to stdout.
func startCLIOut(t *testing.T, stdout io.Writer, exe string, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{cmd: exec.Command(exe, args...), stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), asCgrstatEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.stop(t)
		}
	})
	return p
}

// stop sends SIGTERM and returns the exit status.
func (p *cliProc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("cgrstat %v did not stop within 15s of SIGTERM", p.cmd.Args[1:])
	}
	return p.cmd.ProcessState.ExitCode()
}

var listening = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

// serveAddr waits until serve says where it listens.
func (p *cliProc) serveAddr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := listening.FindStringSubmatch(p.stderr.String()); m != nil {
			return m[1]
		}
		select {
		case <-p.done:
			t.Fatalf("serve exited: %v\n%s", p.err, p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not listen within 30s:\n%s", p.stderr)
	return ""
}

// freeAddr is a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// needTool skips when a program the test drives is not installed. This is a
// plain skip even in the kernel lab: the guests carry cgrstat's tests, not
// Prometheus or tmux.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (make deps installs it): %v", name, err)
	}
	return path
}
