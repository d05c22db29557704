package kernellab

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// DefaultBusybox is where Debian's busybox-static package installs busybox.
const DefaultBusybox = "/bin/busybox"

// GuestCLI is where the cgrstat binary lives in the guest; tests find it
// through $CGRSTAT_BIN.
const GuestCLI = "/bin/cgrstat"

// TestBinary is one executable the guest runs as a Go test binary.
type TestBinary struct {
	// Name identifies the binary in result lines. It must be a single
	// word (letters, digits, '-', '_', '.').
	Name string
	// Path is the binary on the host. It must be statically linked
	// (CGO_ENABLED=0): the guest has no libc.
	Path string
	// Dir is the guest directory the binary runs in, like go test runs a
	// test binary in its package's source directory. Empty means /.
	Dir string
}

// File is a host file or directory tree copied into the guest.
type File struct {
	Src string // host path; a directory is copied recursively
	Dst string // guest path
}

// InitramfsConfig describes what the guest runs.
type InitramfsConfig struct {
	Busybox string // static busybox binary; DefaultBusybox if empty
	// Arch is the guest's architecture, HostArch() if empty: busybox and
	// every test binary must be built for it.
	Arch  string
	Tests []TestBinary
	Files []File
	// Run is passed as -test.run to every test binary when not empty.
	Run string
	// Skip is passed as -test.skip to every test binary when not empty:
	// the tests it matches do not run.
	Skip string
	// SubsetSkips are the -test.skip patterns of the subsets a guest may
	// run, by name, passed instead of Skip when the kernel command line
	// asks for that subset (SubsetArg): one initramfs serves guests of one
	// architecture that run every test and guests that run a subset.
	SubsetSkips map[string]string
	// Count is passed as -test.count: each test runs that many times
	// (once when zero).
	Count int
	// TestTimeout is passed as -test.timeout. It should be shorter than
	// the VM's timeout, so that a hung test dies with Go's goroutine dump
	// on the console instead of a silent kill.
	TestTimeout time.Duration
	// Env holds extra KEY=value pairs exported before the tests run.
	Env []string
}

// BuildInitramfs writes a gzip-compressed newc archive to dst with busybox,
// the init script, the test binaries (as /tests/<Name>) and cfg.Files.
func BuildInitramfs(dst string, cfg InitramfsConfig) error {
	if err := buildInitramfs(dst, cfg); err != nil {
		return fmt.Errorf("building initramfs %s: %w", dst, err)
	}
	return nil
}

func buildInitramfs(dst string, cfg InitramfsConfig) error {
	if cfg.Busybox == "" {
		cfg.Busybox = DefaultBusybox
	}
	if cfg.Arch == "" {
		cfg.Arch = HostArch()
	}
	arch, err := LookupArch(cfg.Arch)
	if err != nil {
		return err
	}
	if err := errors.Join(checkStatic(cfg.Busybox), checkMachine(cfg.Busybox, arch.ELF)); err != nil {
		return fmt.Errorf("busybox (install busybox-static): %w", err)
	}
	script, err := initScript(cfg)
	if err != nil {
		return err
	}
	return writeGzipArchive(dst, func(c *cpioWriter) error { return writeArchive(c, cfg, arch, script) })
}

// writeGzipArchive writes the archive that fill writes to dst, compressed
// with gzip, which every kernel's initramfs unpacker reads.
func writeGzipArchive(dst string, fill func(*cpioWriter) error) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := fill(newCPIOWriter(zw)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// BuildModules writes an initramfs archive to append to a guest's
// (Config.More) with kernel modules the init script loads in the given
// order before it looks for the scratch disk.
func BuildModules(dst string, modules []string) error {
	err := writeGzipArchive(dst, func(c *cpioWriter) error {
		var order []string
		for _, m := range modules {
			if err := copyFile(c, m, path.Join(guestModules, filepath.Base(m))); err != nil {
				return err
			}
			order = append(order, filepath.Base(m))
		}
		list := strings.Join(order, "\n") + "\n"
		if err := c.file(path.Join(guestModules, "order"), 0o644, int64(len(list)), strings.NewReader(list)); err != nil {
			return err
		}
		return c.close()
	})
	if err != nil {
		return fmt.Errorf("building the modules archive %s: %w", dst, err)
	}
	return nil
}

// guestModules is where the guest finds its modules and their load order.
const guestModules = "lib/modules"

func writeArchive(c *cpioWriter, cfg InitramfsConfig, arch Arch, script []byte) error {
	for _, d := range []string{"dev", "proc", "sys", "tmp", "sbin", "usr/bin", "usr/sbin", "tests"} {
		if err := c.mkdirAll(d); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for init's stdio before init can mount
	// devtmpfs; without the node init runs with no output at all.
	if err := c.charDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := copyFile(c, cfg.Busybox, "bin/busybox"); err != nil {
		return err
	}
	// Only sh is linked here; init installs the other applets itself.
	if err := c.symlink("bin/sh", "busybox"); err != nil {
		return err
	}
	if err := c.file("init", 0o755, int64(len(script)), bytes.NewReader(script)); err != nil {
		return err
	}
	for _, t := range cfg.Tests {
		if !isScript(t.Path) {
			if err := errors.Join(checkStatic(t.Path), checkMachine(t.Path, arch.ELF)); err != nil {
				return fmt.Errorf("test binary %s: %w", t.Name, err)
			}
		}
		if err := copyFile(c, t.Path, path.Join("tests", t.Name)); err != nil {
			return err
		}
		if t.Dir != "" {
			if err := c.mkdirAll(t.Dir); err != nil {
				return err
			}
		}
	}
	for _, f := range cfg.Files {
		if err := copyTree(c, f.Src, f.Dst); err != nil {
			return err
		}
	}
	return c.close()
}

func copyFile(c *cpioWriter, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return c.file(dst, uint32(fi.Mode().Perm()), fi.Size(), f)
}

func copyTree(c *cpioWriter, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		guest := path.Join(dst, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return c.mkdirAll(guest)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return c.symlink(guest, target)
		case d.Type().IsRegular():
			return copyFile(c, p, guest)
		}
		return nil // sockets and devices have no place in a guest tree
	})
}

// checkStatic rejects dynamically linked ELF files, which would fail in the
// guest with a confusing "not found" from the shell.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0", p)
		}
	}
	return nil
}

// isScript lets callers (the harness's own tests) run shell scripts as
// test binaries.
func isScript(p string) bool {
	b := make([]byte, 2)
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Read(b)
	return err == nil && string(b) == "#!"
}

func initScript(cfg InitramfsConfig) ([]byte, error) {
	for _, t := range cfg.Tests {
		if t.Name == "" || strings.ContainsFunc(t.Name, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) {
			return nil, fmt.Errorf("invalid test binary name %q", t.Name)
		}
	}
	args := []string{"-test.v", fmt.Sprintf("-test.count=%d", max(cfg.Count, 1))}
	if cfg.Run != "" {
		args = append(args, "-test.run="+cfg.Run)
	}
	if cfg.Skip != "" {
		args = append(args, "-test.skip="+cfg.Skip)
	}
	if cfg.TestTimeout > 0 {
		args = append(args, "-test.timeout="+cfg.TestTimeout.String())
	}
	var buf bytes.Buffer
	err := initTemplate.Execute(&buf, map[string]any{
		"Tests":       cfg.Tests,
		"Args":        args,
		"Env":         cfg.Env,
		"CLI":         GuestCLI,
		"Env0":        "CGRSTAT_REQUIRE_KERNEL=1",
		"SubsetSkips": cfg.SubsetSkips,
	})
	return buf.Bytes(), err
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var initTemplate = template.Must(template.New("init").Funcs(template.FuncMap{
	"q": shellQuote,
	"qs": func(ss []string) string {
		q := make([]string, len(ss))
		for i, s := range ss {
			q[i] = shellQuote(s)
		}
		return strings.Join(q, " ")
	},
}).Parse(`#!/bin/sh
# PID 1 of a kernel lab guest: prepare the mounts cgrstat's tests need, run
# every test binary, report, power off. Any way out other than the final
# poweroff panics the kernel, which the host reports as a failure.
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/tmp TMPDIR=/tmp

fatal() { echo "CGRSTAT-LAB-ERROR $*"; poweroff -f; }

mount -t proc proc /proc || fatal "mount proc"
mount -t sysfs sysfs /sys || fatal "mount sysfs"
mount -t devtmpfs devtmpfs /dev || fatal "mount devtmpfs"
mount -t tmpfs tmpfs /tmp || fatal "mount tmpfs"

# The host's choices, from the kernel command line (GuestCmdline).
cgroup=2 scratch= subset=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	cgrstat_lab.cgroup=*) cgroup=${arg#*=} ;;
	cgrstat_lab.scratch=*) scratch=${arg#*=} ;;
	cgrstat_lab.subset=*) subset=${arg#*=} ;;
	esac
done
# The subset's -test.skip (InitramfsConfig.SubsetSkips), when asked for.
subsetskip=
case "$subset" in
{{range $name, $skip := .SubsetSkips}}{{q $name}}) subsetskip={{q $skip}} ;;
{{end}}esac

# Modules the kernel does not have built in (virtio on 6.1, virtio_blk),
# in dependency order (BuildModules).
if [ -f /lib/modules/order ]; then
	for m in $(cat /lib/modules/order); do
		insmod /lib/modules/$m || fatal "insmod $m"
	done
fi

# Scratch files (TMPDIR) live on a real file system, whose page cache
# reclaim can drop; tmpfs pages cannot go anywhere without swap.
if [ -n "$scratch" ]; then
	i=0
	while [ ! -b "$scratch" ]; do
		i=$((i+1))
		[ $i -le 100 ] || fatal "no $scratch: the virtio-blk disk did not appear"
		sleep 0.1 2>/dev/null || sleep 1
	done
	mkdir -p /scratch && mount -t ext4 "$scratch" /scratch || fatal "mount -t ext4 $scratch"
	mkdir -p /scratch/tmp && chmod 1777 /scratch/tmp
	export TMPDIR=/scratch/tmp
fi

case "$cgroup" in
1)
	# Like hosts that kept cgroup v1: memory on its own hierarchy, and a
	# cgroup2 mount beside it without the memory controller.
	mount -t tmpfs cgroup /sys/fs/cgroup || fatal "mount tmpfs on /sys/fs/cgroup"
	mkdir /sys/fs/cgroup/memory /sys/fs/cgroup/unified
	mount -t cgroup -o memory memory /sys/fs/cgroup/memory || fatal "mount the cgroup v1 memory controller"
	mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified || fatal "mount cgroup2"
	;;
2)
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || fatal "mount cgroup2"
	echo +memory > /sys/fs/cgroup/cgroup.subtree_control || fatal "enable +memory"
	;;
*) fatal "unknown cgroup version $cgroup" ;;
esac
mount -t bpf bpf /sys/fs/bpf || fatal "mount bpffs"
mount -t tracefs tracefs /sys/kernel/tracing || fatal "mount tracefs"
# debugfs is a convenience for debugging; tests must not need it.
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ulimit -l unlimited 2>/dev/null
# serve's tests listen on 127.0.0.1.
ifconfig lo 127.0.0.1 up || fatal "loopback"

export {{q .Env0}} CGRSTAT_LAB_CGROUP=v$cgroup
[ -x {{.CLI}} ] && export CGRSTAT_BIN={{.CLI}}
{{range .Env}}export {{q .}}
{{end}}
tmpfstype=$(awk -v d="${TMPDIR%/tmp}" '$2 == d { print $3 }' /proc/mounts)
echo "CGRSTAT-LAB-START kernel=$(uname -r) arch=$(uname -m) cgroup=v$cgroup tmpdir=${tmpfstype:-tmpfs}"
pass=0 fail=0 skip=0 status=0
{{range .Tests}}
cd {{if .Dir}}{{q .Dir}}{{else}}/{{end}}
echo "CGRSTAT-LAB-BEGIN name={{.Name}}"
( /tests/{{.Name}} {{qs $.Args}} ${subsetskip:+"-test.skip=$subsetskip"}; echo $? > /tmp/rc ) 2>&1 | tee /tmp/out
rc=$(cat /tmp/rc 2>/dev/null || echo 255)
p=$(grep -c -- '--- PASS' /tmp/out)
f=$(grep -c -- '--- FAIL' /tmp/out)
s=$(grep -c -- '--- SKIP' /tmp/out)
echo "CGRSTAT-LAB-TEST name={{.Name}} pass=$p fail=$f skip=$s exit=$rc"
pass=$((pass+p)) fail=$((fail+f)) skip=$((skip+s))
[ "$rc" = 0 ] || status=$rc
rm -f /tmp/rc /tmp/out
{{end}}
cd /
echo "CGRSTAT-LAB-RESULT pass=$pass fail=$fail skip=$skip exit=$status"
sync
poweroff -f
`))

// SubsetArg on the kernel command line makes the guest skip the tests of
// the subset InitramfsConfig.SubsetSkips names name.
func SubsetArg(name string) string { return "cgrstat_lab.subset=" + name }

// GuestCmdline is what the kernel command line tells the init script: the
// cgroup version to mount the memory controller on, and whether /dev/vda
// (Config.Disk) holds the scratch file system.
func GuestCmdline(cgroupVersion int, scratch bool) string {
	s := fmt.Sprintf("cgrstat_lab.cgroup=%d", cgroupVersion)
	if scratch {
		s += " cgrstat_lab.scratch=/dev/vda"
	}
	return s
}
