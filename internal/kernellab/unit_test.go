package kernellab

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseDeb822Sources(t *testing.T) {
	const in = `# leading comment
Types: deb deb-src
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 -----END PGP PUBLIC KEY BLOCK-----

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: sid
Components: main
`
	got, err := parseDeb822Sources(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d stanzas, want 2 (the disabled one dropped): %+v", len(got), got)
	}
	if !slices.Equal(got[0].Types, []string{"deb", "deb-src"}) || got[0].URIs[0] != "http://mirror.example/debian" ||
		!slices.Equal(got[0].Suites, []string{"bookworm", "bookworm-updates"}) || got[0].SignedBy != "/usr/share/keyrings/debian-archive-keyring.gpg" {
		t.Errorf("first stanza = %+v", got[0])
	}
	if !strings.Contains(got[1].SignedBy, "BEGIN PGP") {
		t.Errorf("inline key lost: %q", got[1].SignedBy)
	}
	if m, err := debianMirror(got); err != nil || m != "http://mirror.example/debian" {
		t.Errorf("debianMirror = %q, %v", m, err)
	}
}

func TestParseOneLineSources(t *testing.T) {
	const in = `# comment
deb-src http://src.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [ arch=amd64 signed-by=/k.gpg ] http://mirror.example/debian/ bookworm main non-free # trailing

deb http://other.example/debian bookworm contrib
`
	got, err := parseOneLineSources(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d entries, want 4: %+v", len(got), got)
	}
	if got[2].SignedBy != "/k.gpg" || got[2].Suites[0] != "bookworm" || !slices.Equal(got[2].Components, []string{"main", "non-free"}) {
		t.Errorf("entry with options = %+v", got[2])
	}
	if m, err := debianMirror(got); err != nil || m != "http://mirror.example/debian" {
		t.Errorf("debianMirror = %q, %v", m, err)
	}
	if _, err := parseOneLineSources(strings.NewReader("deb [signed-by=/k http://x sid main\n")); err == nil {
		t.Error("unterminated options accepted")
	}
}

func TestDebianMirrorNone(t *testing.T) {
	s := []aptSource{{Types: []string{"deb"}, URIs: []string{"http://x/debian-security"}, Suites: []string{"bookworm-security"}, Components: []string{"main"}}}
	if m, err := debianMirror(s); err == nil {
		t.Errorf("found mirror %q in security-only sources", m)
	}
}

func TestSystemMirror(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "etc/apt/sources.list.d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(d, "security.sources"), "Types: deb\nURIs: http://s.example/debian-security\nSuites: trixie-security\nComponents: main\n")
	write(filepath.Join(d, "ignored.save"), "not a sources file")
	if _, err := SystemMirror(root); err == nil {
		t.Error("no error without a main archive")
	}
	write(filepath.Join(root, "etc/apt/sources.list"), "deb http://one.example/debian trixie main\n")
	if m, err := SystemMirror(root); err != nil || m != "http://one.example/debian" {
		t.Errorf("SystemMirror = %q, %v", m, err)
	}
}

func TestReleaseFromDepends(t *testing.T) {
	for _, tc := range []struct{ stanza, want string }{
		{"Package: linux-image-cloud-amd64\nVersion: 6.1.176-1\nDepends: linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)\n", "6.1.0-50-cloud-amd64"},
		{"Package: linux-image-cloud-amd64\nDepends: linux-base-cloud-amd64, linux-image-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)\nDescription: x\n", "7.2.13+deb14-cloud-amd64"},
		{"Depends: initramfs-tools | linux-image-6.12.117+deb13-cloud-amd64\n", "6.12.117+deb13-cloud-amd64"},
		{"Package: linux-image-cloud-arm64\nDepends: linux-base-cloud-arm64 (= 7.3.4-1~bpo13+1), linux-image-7.3.4+deb13-cloud-arm64 (= 7.3.4-1~bpo13+1), linux-modules-cloud-arm64\n", "7.3.4+deb13-cloud-arm64"},
	} {
		got, err := releaseFromDepends([]byte(tc.stanza))
		if err != nil || got != tc.want {
			t.Errorf("releaseFromDepends(%q) = %q, %v; want %q", tc.stanza, got, err, tc.want)
		}
	}
	if got, err := releaseFromDepends([]byte("Package: x\nDepends: linux-base\n")); err == nil {
		t.Errorf("found release %q in a stanza without one", got)
	}
}

func TestIsKernelPath(t *testing.T) {
	const rel = "7.2.13+deb14-cloud-amd64"
	for name, want := range map[string]bool{
		"./usr/lib/modules/" + rel + "/vmlinuz": true,
		"./boot/vmlinuz-" + rel:                 true,
		"./boot/vmlinuz-6.1.0-50-cloud-amd64":   false,
		"./boot/System.map-" + rel:              false,
		"./usr/lib/modules/" + rel + "/kernel":  false,
	} {
		if got := isKernelPath(name, rel); got != want {
			t.Errorf("isKernelPath(%q) = %v", name, got)
		}
	}
	if p := kernelPackages(rel); p[0] != "linux-binary-"+rel || p[1] != "linux-image-"+rel+"-unsigned" {
		t.Errorf("kernelPackages = %q", p)
	}
}

func TestParseSuites(t *testing.T) {
	s, err := ParseSuites("bookworm, sid/arm64,")
	if err != nil || len(s) != 2 || s[0] != (Suite{"bookworm", HostArch()}) || s[1] != (Suite{"sid", "arm64"}) {
		t.Errorf("ParseSuites = %v, %v", s, err)
	}
	for _, bad := range []string{"", "../etc", "Sid", "sid/riscv64", "sid/"} {
		if _, err := ParseSuites(bad); err == nil {
			t.Errorf("ParseSuites(%q) accepted", bad)
		}
	}
}

func TestReleaseFromBzImage(t *testing.T) {
	img := make([]byte, 0x1000)
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x020f)
	binary.LittleEndian.PutUint16(img[0x20e:], 0x600)
	copy(img[0x800:], "6.12.117+deb13-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP\x00junk")
	p := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if rel, err := KernelRelease(p); err != nil || rel != "6.12.117+deb13-cloud-amd64" {
		t.Errorf("KernelRelease = %q, %v", rel, err)
	}
	copy(img[0x202:], "nope")
	os.WriteFile(p, img, 0o644)
	if _, err := KernelRelease(p); err == nil {
		t.Error("accepted an image without HdrS")
	}
}

func console(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

func TestParseConsolePass(t *testing.T) {
	r := ParseConsole(console(
		"SeaBIOS",
		"CGRSTAT-LAB-START kernel=6.1.0-50-cloud-amd64",
		"CGRSTAT-LAB-BEGIN name=a",
		"--- PASS: TestKernelA (0.1s)",
		"CGRSTAT-LAB-TEST name=a pass=1 fail=0 skip=0 exit=0",
		"[    2.5] random: crng init doneCGRSTAT-LAB-RESULT pass=1 fail=0 skip=0 exit=0",
		"[    2.6] reboot: Power down",
	))
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if r.Release != "6.1.0-50-cloud-amd64" || r.Pass != 1 || len(r.Tests) != 1 || r.Tests[0].Name != "a" {
		t.Errorf("result = %+v", r)
	}
	if out := r.Output("a"); out != "--- PASS: TestKernelA (0.1s)" {
		t.Errorf("Output = %q", out)
	}
}

func TestParseConsoleFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		console []byte
		want    error
	}{
		{"failed test", console("CGRSTAT-LAB-RESULT pass=3 fail=1 skip=0 exit=1"), ErrTestsFailed},
		{"exit only", console("CGRSTAT-LAB-RESULT pass=3 fail=0 skip=0 exit=2"), ErrTestsFailed},
		{"garbled count", console("CGRSTAT-LAB-RESULT pass=x fail=0 skip=0 exit=0"), ErrTestsFailed},
		{"no result", console("CGRSTAT-LAB-START kernel=x", "CGRSTAT-LAB-BEGIN name=a"), ErrNoResult},
		{"init error", console("CGRSTAT-LAB-ERROR mount cgroup2"), ErrNoResult},
		{"panic", console("[    3.1] Kernel panic - not syncing: sysrq triggered crash"), ErrKernelPanic},
		{"panic after result", console("CGRSTAT-LAB-RESULT pass=1 fail=0 skip=0 exit=0", "[    3.1] Kernel panic - not syncing: Attempted to kill init!"), ErrKernelPanic},
		{"oops", console("[   12.000001] BUG: kernel NULL pointer dereference, address: 0000000000000000", "CGRSTAT-LAB-RESULT pass=1 fail=0 skip=0 exit=0"), ErrKernelBug},
	} {
		r := ParseConsole(tc.console)
		if err := r.Err(); !errors.Is(err, tc.want) {
			t.Errorf("%s: Err() = %v, want %v", tc.name, err, tc.want)
		}
	}
	r := ParseConsole(console("CGRSTAT-LAB-RESULT pass=1 fail=0 skip=0 exit=0"))
	r.TimedOut = true
	if err := r.Err(); !errors.Is(err, ErrTimeout) {
		t.Errorf("timed out: Err() = %v", err)
	}
	// A test that merely prints "BUG:" is not a kernel bug.
	r = ParseConsole(console("    x_test.go:12: BUG: fixed", "CGRSTAT-LAB-RESULT pass=1 fail=0 skip=0 exit=0"))
	if err := r.Err(); err != nil {
		t.Errorf("test output taken for a kernel bug: %v", err)
	}
}

func TestTail(t *testing.T) {
	if got := Tail([]byte("a\r\nb\r\nc\r\n"), 2); got != "b\nc" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail([]byte("a\nb"), 5); got != "a\nb" {
		t.Errorf("Tail = %q", got)
	}
}

// cpioEntry is one member of a newc archive as readNewc found it.
type cpioEntry struct {
	name      string
	mode      uint32
	data      string
	rdevMajor uint32
	rdevMinor uint32
}

// readNewc is an independent newc reader that checks the alignment rules.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	hex := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("bad header field at %d: %v", off, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("bad magic at offset %d", off)
		}
		mode, size, namesize := hex(1), int(hex(6)), int(hex(11))
		e := cpioEntry{mode: mode, rdevMajor: hex(9), rdevMinor: hex(10)}
		nameStart := off + 110
		e.name = string(b[nameStart : nameStart+namesize-1])
		if b[nameStart+namesize-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", e.name)
		}
		dataStart := align(nameStart + namesize)
		e.data = string(b[dataStart : dataStart+size])
		off = align(dataStart + size)
		if e.name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.file("/usr/bin/x", 0o755, 5, strings.NewReader("hello")))
	must(c.symlink("bin/sh", "busybox"))
	must(c.charDev("dev/console", 0o600, 5, 1))
	must(c.mkdirAll("usr/bin"))
	must(c.file("empty", 0o644, 0, strings.NewReader("")))
	must(c.close())
	entries := readNewc(t, buf.Bytes())
	var names []string
	for _, e := range entries {
		names = append(names, e.name)
	}
	want := []string{"usr", "usr/bin", "usr/bin/x", "bin", "bin/sh", "dev", "dev/console", "empty"}
	if !slices.Equal(names, want) {
		t.Fatalf("names = %q, want %q", names, want)
	}
	if e := entries[2]; e.data != "hello" || e.mode != cpioRegular|0o755 {
		t.Errorf("file entry = %+v", e)
	}
	if e := entries[4]; e.data != "busybox" || e.mode != cpioSymlink|0o777 {
		t.Errorf("symlink entry = %+v", e)
	}
	if e := entries[6]; e.mode != cpioCharDev|0o600 || e.rdevMajor != 5 || e.rdevMinor != 1 {
		t.Errorf("device entry = %+v", e)
	}
	if err := c.file("short", 0o644, 10, strings.NewReader("abc")); err == nil {
		t.Error("short file accepted")
	}

	// GNU cpio, the reference, must list the same archive.
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Log("GNU cpio not installed; skipping the cross-check")
		return
	}
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, want) {
		t.Errorf("cpio -t lists %q", got)
	}
}

func TestBuildInitramfs(t *testing.T) {
	if err := checkStatic(DefaultBusybox); err != nil {
		t.Skipf("needs busybox-static: %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "t.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho ok\n"), 0o755)
	os.MkdirAll(filepath.Join(dir, "testdata/sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "testdata/sub/f"), []byte("data"), 0o644)
	dst := filepath.Join(dir, "initrd.gz")
	err := BuildInitramfs(dst, InitramfsConfig{
		Tests: []TestBinary{{Name: "t", Path: script, Dir: "/src/pkg/x"}},
		Files: []File{{Src: filepath.Join(dir, "testdata"), Dst: "/src/pkg/x/testdata"}},
		Run:   "Kernel's",
	})
	if err != nil {
		t.Fatal(err)
	}
	files := readArchive(t, dst)
	for _, name := range []string{"init", "bin/busybox", "bin/sh", "dev/console", "tests/t", "src/pkg/x", "src/pkg/x/testdata/sub/f"} {
		if _, ok := files[name]; !ok {
			t.Errorf("%s missing from the initramfs", name)
		}
	}
	init := files["init"].data
	for _, want := range []string{"export 'CGRSTAT_REQUIRE_KERNEL=1'", `'-test.run=Kernel'\''s'`, "cd '/src/pkg/x'", "poweroff -f", "+memory",
		"mount -t cgroup -o memory", "insmod /lib/modules/$m", "mount -t ext4", "export TMPDIR=/scratch/tmp"} {
		if !strings.Contains(init, want) {
			t.Errorf("init lacks %q:\n%s", want, init)
		}
	}
	if err := BuildInitramfs(dst, InitramfsConfig{Tests: []TestBinary{{Name: "a b", Path: script}}}); err == nil {
		t.Error("a test name with a space was accepted")
	}
	if err := BuildInitramfs(dst, InitramfsConfig{Tests: []TestBinary{{Name: "dyn", Path: "/bin/ls"}}}); err == nil {
		t.Error("a dynamically linked test binary was accepted")
	}
}

func TestTailStripsEscapes(t *testing.T) {
	if got := Tail([]byte("\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS\r\nok\r\n"), 5); got != "SeaBIOS\nok" {
		t.Errorf("Tail = %q", got)
	}
}

func TestParseConfig(t *testing.T) {
	cfg, err := parseConfig(strings.NewReader("#\n# Automatically generated file\nCONFIG_MEMCG=y\n# CONFIG_MEMCG_V1 is not set\nCONFIG_VIRTIO_BLK=m\nCONFIG_LOCALVERSION=\"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for sym, want := range map[string]string{"CONFIG_MEMCG": "y", "CONFIG_MEMCG_V1": "n", "CONFIG_VIRTIO_BLK": "m", "CONFIG_LOCALVERSION": "", "CONFIG_NOPE": ""} {
		if cfg[sym] != want {
			t.Errorf("%s = %q, want %q", sym, cfg[sym], want)
		}
	}
	if _, err := parseConfig(strings.NewReader("not a config\n")); err == nil {
		t.Error("accepted a file without CONFIG_ lines")
	}
}

func TestCgroupV1FromConfig(t *testing.T) {
	for _, tc := range []struct {
		config string
		ok     bool
		why    string
	}{
		{"CONFIG_MEMCG=y\n", true, ""}, // 6.1: no CONFIG_MEMCG_V1 yet, v1 always there
		{"CONFIG_MEMCG=y\nCONFIG_MEMCG_V1=y\n", true, ""},
		{"CONFIG_MEMCG=y\n# CONFIG_MEMCG_V1 is not set\n", false, "CONFIG_MEMCG_V1 is not set"},
		{"# CONFIG_MEMCG is not set\n", false, "CONFIG_MEMCG is not set"},
	} {
		p := filepath.Join(t.TempDir(), "config")
		os.WriteFile(p, []byte(tc.config), 0o644)
		ok, why, err := Kernel{Config: p}.CgroupV1()
		if err != nil || ok != tc.ok || why != tc.why {
			t.Errorf("%q: CgroupV1 = %v, %q, %v; want %v, %q", tc.config, ok, why, err, tc.ok, tc.why)
		}
	}
}

func TestModuleFiles(t *testing.T) {
	const rel = "6.12.117+deb13-cloud-arm64"
	for name, want := range map[string]string{
		"./usr/lib/modules/" + rel + "/kernel/drivers/block/virtio_blk.ko.xz":           "virtio_blk.ko.xz",
		"./lib/modules/" + rel + "/kernel/drivers/virtio/virtio_pci.ko":                 "virtio_pci.ko",
		"./usr/lib/modules/" + rel + "/kernel/drivers/char/hw_random/virtio-rng.ko.zst": "virtio-rng.ko.zst",
		"./usr/lib/modules/" + rel + "/kernel/fs/configfs/configfs.ko.xz":               "",
		"./usr/lib/modules/6.1.0-50-cloud-amd64/kernel/drivers/block/virtio_blk.ko":     "",
		"./usr/lib/modules/" + rel + "/modules.builtin":                                 "",
	} {
		if got := moduleFile(name, rel); got != want {
			t.Errorf("moduleFile(%q) = %q, want %q", name, got, want)
		}
	}
	if moduleName("virtio-rng.ko.zst") != "virtio_rng" || moduleName("virtio_blk.ko") != "virtio_blk" || moduleName("order") != "" {
		t.Error("moduleName")
	}
	if !isConfigPath("./usr/lib/modules/"+rel+"/config", rel) || !isConfigPath("./boot/config-"+rel, rel) || isConfigPath("./boot/config-6.1", rel) {
		t.Error("isConfigPath")
	}
}

// 6.1's virtio modules: the order busybox insmod needs them in.
func TestLoadOrder(t *testing.T) {
	deps := map[string][]string{
		"virtio":                {},
		"virtio_ring":           {},
		"virtio_pci_legacy_dev": {},
		"virtio_pci_modern_dev": {},
		"virtio_pci":            {"virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci_legacy_dev"},
		"virtio_blk":            {"virtio", "virtio_ring"},
		"virtio_net":            {"virtio", "virtio_ring", "net_failover"},
	}
	files := map[string]string{}
	for m := range deps {
		files[m] = "/cache/" + m + ".ko"
	}
	depends := func(ko string) ([]string, error) { return deps[moduleName(filepath.Base(ko))], nil }
	got, err := loadOrder([]string{"virtio_pci", "virtio_blk"}, files, depends)
	want := []string{"virtio.ko", "virtio_pci_legacy_dev.ko", "virtio_pci_modern_dev.ko", "virtio_ring.ko", "virtio_pci.ko", "virtio_blk.ko"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("loadOrder = %q, %v; want %q", got, err, want)
	}
	if _, err := loadOrder([]string{"virtio_net"}, files, depends); err == nil || !strings.Contains(err.Error(), "net_failover") {
		t.Errorf("a missing dependency: %v", err)
	}
	if got, err := loadOrder(nil, files, depends); err != nil || len(got) != 0 {
		t.Errorf("nothing wanted (all built in): %q, %v", got, err)
	}
}

func TestSourcesList(t *testing.T) {
	got := sourcesList("/k.gpg", "http://m.example/debian", "trixie-backports")
	want := "deb [signed-by=/k.gpg] http://m.example/debian trixie-backports main\ndeb [signed-by=/k.gpg] http://m.example/debian trixie main\n"
	if got != want {
		t.Errorf("sourcesList = %q", got)
	}
	if got := sourcesList("/k.gpg", "http://m.example/debian", "sid"); strings.Count(got, "\n") != 1 {
		t.Errorf("sourcesList(sid) = %q", got)
	}
}

func TestReleaseFromArm64Image(t *testing.T) {
	img := make([]byte, 0x2000)
	copy(img[0x38:], "ARM\x64")
	copy(img[0x1000:], "Linux version %s (%s)\x00Linux version 7.3.4+deb13-cloud-arm64 (debian-kernel@lists.debian.org) (gcc)\x00")
	p := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(p, img, 0o644)
	if rel, err := KernelRelease(p); err != nil || rel != "7.3.4+deb13-cloud-arm64" {
		t.Errorf("KernelRelease = %q, %v", rel, err)
	}
}

func TestGuestCmdline(t *testing.T) {
	if got := GuestCmdline(1, true); got != "cgrstat_lab.cgroup=1 cgrstat_lab.scratch=/dev/vda" {
		t.Errorf("GuestCmdline(1, true) = %q", got)
	}
	if got := GuestCmdline(2, false); got != "cgrstat_lab.cgroup=2" {
		t.Errorf("GuestCmdline(2, false) = %q", got)
	}
}

func TestBuildModules(t *testing.T) {
	dir := t.TempDir()
	var mods []string
	for _, m := range []string{"virtio.ko", "virtio_blk.ko"} {
		p := filepath.Join(dir, m)
		os.WriteFile(p, []byte("module "+m), 0o644)
		mods = append(mods, p)
	}
	dst := filepath.Join(dir, "modules.cpio.gz")
	if err := BuildModules(dst, mods); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for name, e := range readArchive(t, dst) {
		files[name] = e.data
	}
	if files["lib/modules/order"] != "virtio.ko\nvirtio_blk.ko\n" || files["lib/modules/virtio_blk.ko"] != "module virtio_blk.ko" {
		t.Errorf("modules archive: %q", files)
	}
}

// readArchive reads a gzip-compressed newc archive by entry name.
func readArchive(t *testing.T, p string) map[string]cpioEntry {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]cpioEntry{}
	for _, e := range readNewc(t, raw) {
		files[e.name] = e
	}
	return files
}

// TestSubsetSkip: the init script picks the -test.skip of the subset the
// kernel command line names (SubsetArg), none for a guest that names none
// or one the initramfs does not know.
func TestSubsetSkip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	script, err := initScript(InitramfsConfig{Arch: HostArch(), Run: "^TestKernel",
		SubsetSkips: map[string]string{"kernel": "^(TestKernelA|TestKernelB)$", "all-but-host": "^(TestKernelA)$"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(script)
	start, end := strings.Index(s, "\nsubsetskip=\n"), strings.Index(s, "\nesac\n")
	if start < 0 || end < start {
		t.Fatalf("no subset selection in the init script:\n%s", s)
	}
	pick := s[start : end+len("\nesac\n")]
	for cmdline, want := range map[string]string{
		SubsetArg("kernel"): "^(TestKernelA|TestKernelB)$", SubsetArg("all-but-host"): "^(TestKernelA)$",
		"": "", SubsetArg("other"): "",
	} {
		arg := strings.TrimPrefix(cmdline, "cgrstat_lab.subset=")
		out, err := exec.Command(sh, "-c", "subset="+shellQuote(arg)+pick+`printf %s "$subsetskip"`).CombinedOutput()
		if err != nil || string(out) != want {
			t.Errorf("%q: subsetskip %q (%v), want %q", cmdline, out, err, want)
		}
	}
}
