package kernellab

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/internal/testenv"
)

// These tests boot real guests to show that the harness turns every kind of
// guest failure into a failed run. They use bookworm's kernel (fetched once
// into the shared cache) or $KERNEL, and plain scripts as guest "test
// binaries" where a Go binary would only cost build time.

var labKernel struct {
	once          sync.Once
	path, release string
	skip, err     string
}

// needLab returns the kernel to boot. The tests boot a guest each and run
// in parallel: most of a short guest's time is QEMU starting and the kernel
// booting.
func needLab(t *testing.T) string {
	t.Helper()
	t.Parallel()
	if testing.Short() {
		t.Skip("short mode: boots QEMU guests")
	}
	if testenv.Required() {
		t.Skip("inside a kernel lab guest: the harness does not nest")
	}
	labKernel.once.Do(findLabKernel)
	if labKernel.skip != "" {
		t.Skip(labKernel.skip)
	}
	if labKernel.err != "" {
		t.Fatal(labKernel.err)
	}
	return labKernel.path
}

func findLabKernel() {
	host, _ := LookupArch(HostArch())
	for _, tool := range []string{host.QEMU, "apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			labKernel.skip = tool + " is not installed (apt-get install qemu-system-x86 busybox-static)"
			return
		}
	}
	if err := checkStatic(DefaultBusybox); err != nil {
		labKernel.skip = "no static busybox (apt-get install busybox-static): " + err.Error()
		return
	}
	if k := os.Getenv("KERNEL"); k != "" {
		labKernel.path = k
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k, err := FetchKernel(ctx, Suite{Name: "bookworm"}, "")
	if err != nil {
		labKernel.err = err.Error()
		return
	}
	labKernel.path, labKernel.release = k.Vmlinuz, k.Release
}

func script(t *testing.T, name, body string) TestBinary {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return TestBinary{Name: name, Path: p}
}

func boot(t *testing.T, kernel string, timeout time.Duration, tests ...TestBinary) (Result, error) {
	t.Helper()
	initrd := filepath.Join(t.TempDir(), "initrd.gz")
	if err := BuildInitramfs(initrd, InitramfsConfig{Tests: tests, TestTimeout: timeout}); err != nil {
		t.Fatal(err)
	}
	r, err := Boot(context.Background(), Config{Kernel: kernel, Initramfs: initrd, Timeout: timeout, MemoryMiB: 512})
	t.Logf("guest ran %.1fs, err: %v", r.Duration.Seconds(), err)
	if testing.Verbose() && err != nil {
		t.Logf("console tail:\n%s", Tail(r.Console, 15))
	}
	return r, err
}

func TestLabPass(t *testing.T) {
	kernel := needLab(t)
	r, err := boot(t, kernel, time.Minute,
		script(t, "ok", `echo "--- PASS: TestOK (0.00s)"; grep -q memory /sys/fs/cgroup/cgroup.subtree_control || exit 3
[ "$CGRSTAT_REQUIRE_KERNEL" = 1 ] || exit 4
grep -q " /sys/fs/bpf bpf " /proc/mounts || { cat /proc/mounts; exit 5; }`))
	if err != nil {
		t.Fatalf("a passing guest failed: %v\n%s", err, Tail(r.Console, 20))
	}
	if r.Pass != 1 || r.Fail != 0 || r.Exit != 0 || r.Release == "" {
		t.Errorf("result = %+v", r)
	}
}

// A real Go test binary that fails, followed by one that passes: the run
// must fail and the counts must come from go test's own output.
func TestLabFailingTest(t *testing.T) {
	kernel := needLab(t)
	bin := filepath.Join(t.TempDir(), "failing.test")
	cmd := exec.Command("go", "test", "-c", "-o", bin, "./testdata/failing")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the failing test: %v\n%s", err, out)
	}
	r, err := boot(t, kernel, time.Minute,
		TestBinary{Name: "failing", Path: bin, Dir: "/src/failing"},
		script(t, "ok", `echo "--- PASS: TestOK (0.00s)"`))
	if !errors.Is(err, ErrTestsFailed) {
		t.Fatalf("err = %v, want ErrTestsFailed\n%s", err, Tail(r.Console, 20))
	}
	if r.Pass != 2 || r.Fail != 1 || r.Exit == 0 || len(r.Tests) != 2 || r.Tests[0].Exit == 0 || r.Tests[1].Exit != 0 {
		t.Errorf("result = %+v", r)
	}
	if out := r.Output("failing"); !strings.Contains(out, "this failure is deliberate") {
		t.Errorf("the failing binary's output is missing its message:\n%s", out)
	}
}

// A binary that exits non-zero without a "--- FAIL" line (a crash, a
// TestMain that bails out) still fails the run.
func TestLabExitStatus(t *testing.T) {
	kernel := needLab(t)
	r, err := boot(t, kernel, time.Minute, script(t, "crash", `echo "--- PASS: TestA (0.00s)"; exit 2`))
	if !errors.Is(err, ErrTestsFailed) || r.Exit != 2 {
		t.Fatalf("err = %v, exit = %d; want ErrTestsFailed, 2", err, r.Exit)
	}
}

func TestLabPanic(t *testing.T) {
	kernel := needLab(t)
	r, err := boot(t, kernel, time.Minute, script(t, "panic", `echo "--- PASS: TestA (0.00s)"; echo c > /proc/sysrq-trigger; sleep 100`))
	if !errors.Is(err, ErrKernelPanic) {
		t.Fatalf("err = %v, want ErrKernelPanic\n%s", err, Tail(r.Console, 20))
	}
	if r.TimedOut {
		t.Error("the panic was only noticed at the timeout; panic=-1 and -no-reboot should end QEMU at once")
	}
}

func TestLabHang(t *testing.T) {
	kernel := needLab(t)
	const timeout = 10 * time.Second
	start := time.Now()
	r, err := boot(t, kernel, timeout, script(t, "hang", `echo hanging; while :; do sleep 1; done`))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout\n%s", err, Tail(r.Console, 20))
	}
	if d := time.Since(start); d > timeout+10*time.Second {
		t.Errorf("Boot returned %s after its %s timeout", d-timeout, timeout)
	}
}
