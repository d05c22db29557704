package kernellab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/cgrstat/cgrstat/internal/syncbuf"
)

// Boot defaults.
const (
	DefaultMemoryMiB = 2048
	DefaultCPUs      = 2
	// DefaultTimeout catches a hung guest. A native guest's full run took
	// 450-570 s on the 2-core CI machine in December 2026 (two guests at
	// once), and one slowed by a third guest ran out of 10 minutes.
	DefaultTimeout = 15 * time.Minute
)

// Config describes one guest.
type Config struct {
	Kernel    string // bzImage or arm64 Image (vmlinuz)
	Initramfs string // from BuildInitramfs
	// More are further initramfs archives (BuildModules), appended to
	// Initramfs: the kernel unpacks concatenated archives one after the
	// other, so a kernel's modules join a guest built once per architecture.
	More []string
	// Arch is the guest's architecture; HostArch() if empty.
	Arch string
	// Disk is a raw disk image the guest sees as /dev/vda (virtio-blk).
	// The guest's writes go to a temporary overlay (QEMU's snapshot=on),
	// so guests running at once can share one image.
	Disk      string
	MemoryMiB int
	CPUs      int
	// Timeout bounds the whole boot. A guest still running then is killed
	// and the boot fails with ErrTimeout.
	Timeout time.Duration
	// KVM uses hardware acceleration. Off by default: TCG works
	// everywhere, while a /dev/kvm that exists may still be unusable.
	KVM bool
	// Append is added to the kernel command line.
	Append string
	// Console, if set, receives the guest's serial console as it runs.
	Console io.Writer
	QEMU    string // binary; the architecture's if empty
}

func (c *Config) defaults() error {
	if c.Arch == "" {
		c.Arch = HostArch()
	}
	arch, err := LookupArch(c.Arch)
	if err != nil {
		return err
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = DefaultMemoryMiB
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.QEMU == "" {
		c.QEMU = arch.QEMU
	}
	return nil
}

// qemuArgs builds the command line. panic=-1 turns a panic into an immediate
// reboot, and -no-reboot turns the reboot into a QEMU exit, so that a crashed
// guest ends the run at once instead of waiting for the timeout.
func (c *Config) qemuArgs(initrd string) []string {
	arch, _ := LookupArch(c.Arch)
	args := append([]string{}, arch.Machine...)
	if c.KVM {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg", "-cpu", arch.TCGCPU)
	}
	cmdline := "console=" + arch.Console + " quiet panic=-1 printk.time=1"
	if c.Append != "" {
		cmdline += " " + c.Append
	}
	args = append(args,
		"-smp", strconv.Itoa(c.CPUs),
		"-m", strconv.Itoa(c.MemoryMiB),
		"-nographic", "-no-reboot", "-nodefaults",
		"-serial", "stdio",
		"-kernel", c.Kernel,
		"-initrd", initrd,
		"-append", cmdline,
	)
	if c.Disk != "" {
		// cache=unsafe: the image is thrown away, so the host need not
		// sync it; the guest's own syncs still reach the virtual disk.
		args = append(args,
			"-drive", "file="+c.Disk+",if=none,id=scratch,format=raw,snapshot=on,cache=unsafe",
			"-device", "virtio-blk-pci,drive=scratch")
	}
	return args
}

// Boot runs the guest to completion and reports what its tests did. The
// returned error is non-nil whenever the run is not a clean pass: tests that
// failed, a panic, a timeout, or a guest that never printed its result. The
// Result is filled in as far as the console allows, errors included.
func Boot(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	initrd, cleanup, err := cfg.initrd()
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	start := time.Now()
	console, timedOut, err := runQEMU(ctx, cfg, initrd)
	r := ParseConsole(console)
	r.Duration = time.Since(start)
	r.TimedOut = timedOut
	if err != nil && !timedOut {
		return r, fmt.Errorf("booting %s: %w", cfg.Kernel, err)
	}
	if err := r.Err(); err != nil {
		return r, fmt.Errorf("booting %s: %w", cfg.Kernel, err)
	}
	return r, nil
}

// runQEMU returns the console output and whether the timeout killed QEMU.
// An exit status of QEMU itself is not an error: -no-reboot makes a guest's
// poweroff and its panic look alike, and the console tells them apart.
func runQEMU(ctx context.Context, cfg Config, initrd string) ([]byte, bool, error) {
	tctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, cfg.QEMU, cfg.qemuArgs(initrd)...)
	var buf syncbuf.Buffer
	out := io.Writer(&buf)
	if cfg.Console != nil {
		out = io.MultiWriter(&buf, cfg.Console)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Stdin stays /dev/null so QEMU never puts the caller's terminal in raw
	// mode, and a process group of its own keeps the terminal's Ctrl-C
	// away from it: the caller's context is what stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	timedOut := errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	if ctx.Err() != nil {
		return buf.Bytes(), false, ctx.Err()
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) && !timedOut {
		return buf.Bytes(), false, fmt.Errorf("running %s: %w", cfg.QEMU, err)
	}
	if exitErr != nil && !timedOut && !bytes.Contains(buf.Bytes(), []byte(markStart)) {
		// QEMU failed before the guest got going: a bad option or file.
		return buf.Bytes(), false, fmt.Errorf("%s: %w: %s", cfg.QEMU, err, tail(buf.Bytes(), 5))
	}
	return buf.Bytes(), timedOut, nil
}

// initrd concatenates Initramfs and More into one temporary file, which is
// what QEMU's -initrd takes.
func (c *Config) initrd() (string, func(), error) {
	if len(c.More) == 0 {
		return c.Initramfs, func() {}, nil
	}
	f, err := os.CreateTemp("", "kernellab-initrd-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	for _, p := range append([]string{c.Initramfs}, c.More...) {
		if err := appendFile(f, p); err != nil {
			f.Close()
			cleanup()
			return "", nil, err
		}
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

func appendFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// Tail returns the last n lines of console output, for failure reports,
// without the terminal escapes SeaBIOS prints, which garble CI logs.
func Tail(console []byte, n int) string {
	return tail(ansiEscape.ReplaceAll(console, nil), n)
}

var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|c)`)

func tail(b []byte, n int) string {
	b = bytes.TrimRight(b, "\r\n")
	i := len(b)
	for ; n > 0 && i > 0; n-- {
		i = bytes.LastIndexByte(b[:i], '\n')
		if i < 0 {
			i = 0
		}
	}
	if i > 0 {
		i++
	}
	return string(bytes.ReplaceAll(b[i:], []byte("\r"), nil))
}
