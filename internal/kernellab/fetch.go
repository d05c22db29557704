package kernellab

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// DefaultKeyring verifies the archive's Release files. Debian's keyring
// package carries the keys of the next release too, which is what signs sid.
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// DefaultMaxAge is how long a fetched kernel is used without asking the
// archive for a newer one.
const DefaultMaxAge = 7 * 24 * time.Hour

// Suite is a Debian suite and architecture whose cloud kernel the lab
// boots. The cloud flavour is small, has BTF and virtio, and its memory
// cgroup is built in.
type Suite struct {
	Name string
	Arch string // Debian architecture; HostArch() if empty
}

func (s Suite) arch() string {
	if s.Arch == "" {
		return HostArch()
	}
	return s.Arch
}

// String is "bookworm/amd64".
func (s Suite) String() string { return s.Name + "/" + s.arch() }

// metaPackage depends on the suite's current cloud kernel.
func (s Suite) metaPackage() string { return "linux-image-cloud-" + s.arch() }

// dirName names the suite's directories in the cache.
func (s Suite) dirName() string { return s.Name + "_" + s.arch() }

// DefaultSuites is the lab's matrix, as ParseSuites reads it: on amd64 the
// oldest kernel cgrstat supports, the current stable one and the newest; on
// arm64 the stable one and the newest there (trixie-backports carries a
// newer kernel than sid).
const DefaultSuites = "bookworm/amd64,trixie/amd64,sid/amd64,trixie/arm64,trixie-backports/arm64"

var suiteName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// ParseSuites parses a comma-separated list of suites, each "name" (this
// machine's architecture) or "name/arch".
func ParseSuites(s string) ([]Suite, error) {
	var out []Suite
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		name, arch, slash := strings.Cut(n, "/")
		if !suiteName.MatchString(name) {
			return nil, fmt.Errorf("invalid suite name %q", name)
		}
		if !slash {
			arch = HostArch()
		}
		if _, err := LookupArch(arch); err != nil {
			return nil, err
		}
		out = append(out, Suite{name, arch})
	}
	if len(out) == 0 {
		return nil, errors.New("no suites given")
	}
	return out, nil
}

// DefaultCacheDir is $XDG_CACHE_HOME/cgrstat/kernellab, falling back to
// ~/.cache/cgrstat/kernellab.
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(dir, "cgrstat", "kernellab"), nil
}

// Fetcher downloads Debian kernels with apt, using a private apt state in
// its cache so that the system's apt configuration is never touched.
type Fetcher struct {
	CacheDir string        // DefaultCacheDir if empty
	Refresh  bool          // ask the archive even if the cached kernel is fresh
	MaxAge   time.Duration // DefaultMaxAge if zero
	Mirror   string        // SystemMirror("/") if empty
	Keyring  string        // DefaultKeyring if empty
	Log      io.Writer     // apt's output, if set
}

// Kernel is a Debian kernel ready to boot, with what its guests need that
// is not built in.
type Kernel struct {
	Suite   Suite
	Release string
	Vmlinuz string
	// Config is the kernel's build configuration (/boot/config-<release>).
	Config string
	// Modules are the modules a guest loads, in this order, to see its
	// virtio-blk disk: the ones the kernel does not have built in.
	Modules []string
	// Busybox is a static busybox for the kernel's architecture when that
	// is not this machine's; empty means DefaultBusybox.
	Busybox string
}

// FetchKernel returns the suite's current cloud kernel, fetching it into
// cacheDir unless a fresh copy is there.
func FetchKernel(ctx context.Context, suite Suite, cacheDir string) (Kernel, error) {
	f := Fetcher{CacheDir: cacheDir}
	return f.Fetch(ctx, suite)
}

// Fetch is FetchKernel with f's settings.
func (f *Fetcher) Fetch(ctx context.Context, suite Suite) (Kernel, error) {
	k, err := f.fetch(ctx, suite)
	if err != nil {
		return Kernel{}, fmt.Errorf("fetching %s kernel: %w", suite, err)
	}
	return k, nil
}

func (f *Fetcher) fetch(ctx context.Context, suite Suite) (Kernel, error) {
	if !suiteName.MatchString(suite.Name) {
		return Kernel{}, fmt.Errorf("invalid suite name %q", suite.Name)
	}
	suite.Arch = suite.arch()
	if _, err := LookupArch(suite.Arch); err != nil {
		return Kernel{}, err
	}
	if err := f.defaults(); err != nil {
		return Kernel{}, err
	}
	kdir := filepath.Join(f.CacheDir, "kernels", suite.dirName())
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		return Kernel{}, err
	}
	unlock, err := lockDir(kdir)
	if err != nil {
		return Kernel{}, err
	}
	defer unlock()
	if k, ok := f.cached(suite, kdir); ok {
		return k, nil
	}
	apt, err := f.aptState(suite)
	if err != nil {
		return Kernel{}, err
	}
	if err := apt.update(ctx); err != nil {
		return Kernel{}, err
	}
	release, err := apt.resolveRelease(ctx, suite.metaPackage())
	if err != nil {
		return Kernel{}, err
	}
	k := cachedKernel(suite, kdir, release)
	if !k.complete() {
		if err := apt.downloadKernel(ctx, k); err != nil {
			return Kernel{}, err
		}
		if err := resolveModules(ctx, k); err != nil {
			return Kernel{}, err
		}
	}
	if k.Busybox != "" {
		if _, err := os.Stat(k.Busybox); err != nil {
			if err := apt.downloadBusybox(ctx, k.Busybox, suite.Arch); err != nil {
				return Kernel{}, err
			}
		}
	}
	if err := markCurrent(kdir, release); err != nil {
		return Kernel{}, err
	}
	return k.load()
}

// cachedKernel is where the cache keeps release's files. Each kernel has
// its image, config and modules directory; the modules directory's "order"
// file lists the modules to load and is written last.
func cachedKernel(suite Suite, kdir, release string) Kernel {
	k := Kernel{
		Suite:   suite,
		Release: release,
		Vmlinuz: filepath.Join(kdir, "vmlinuz-"+release),
		Config:  filepath.Join(kdir, "config-"+release),
	}
	if suite.Arch != HostArch() {
		k.Busybox = filepath.Join(kdir, "busybox")
	}
	return k
}

func (k Kernel) modulesDir() string {
	return filepath.Join(filepath.Dir(k.Vmlinuz), "modules-"+k.Release)
}

func (k Kernel) complete() bool {
	for _, p := range []string{k.Vmlinuz, k.Config, filepath.Join(k.modulesDir(), "order")} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// load fills in Modules from the order file.
func (k Kernel) load() (Kernel, error) {
	b, err := os.ReadFile(filepath.Join(k.modulesDir(), "order"))
	if err != nil {
		return k, err
	}
	k.Modules = nil
	for _, name := range strings.Fields(string(b)) {
		k.Modules = append(k.Modules, filepath.Join(k.modulesDir(), name))
	}
	return k, nil
}

func (f *Fetcher) defaults() error {
	var err error
	if f.CacheDir == "" {
		if f.CacheDir, err = DefaultCacheDir(); err != nil {
			return err
		}
	}
	if f.MaxAge == 0 {
		f.MaxAge = DefaultMaxAge
	}
	if f.Keyring == "" {
		f.Keyring = DefaultKeyring
	}
	if _, err := os.Stat(f.Keyring); err != nil {
		return fmt.Errorf("archive keyring (install debian-archive-keyring): %w", err)
	}
	if f.Mirror == "" {
		if f.Mirror, err = SystemMirror("/"); err != nil {
			return err
		}
	}
	return nil
}

// cached returns the suite's kernel if it was resolved within MaxAge. The
// "release" file's mtime is when the archive was last asked.
func (f *Fetcher) cached(suite Suite, kdir string) (Kernel, bool) {
	if f.Refresh {
		return Kernel{}, false
	}
	fi, err := os.Stat(filepath.Join(kdir, "release"))
	if err != nil || time.Since(fi.ModTime()) > f.MaxAge {
		return Kernel{}, false
	}
	b, err := os.ReadFile(filepath.Join(kdir, "release"))
	rel := strings.TrimSpace(string(b))
	if err != nil || rel == "" {
		return Kernel{}, false
	}
	k := cachedKernel(suite, kdir, rel)
	if !k.complete() {
		return Kernel{}, false
	}
	if k.Busybox != "" {
		if _, err := os.Stat(k.Busybox); err != nil {
			return Kernel{}, false
		}
	}
	k, err = k.load()
	return k, err == nil
}

// markCurrent records release as the suite's kernel and drops older ones.
func markCurrent(kdir, release string) error {
	for _, pattern := range []string{"vmlinuz-*", "config-*", "modules-*"} {
		old, _ := filepath.Glob(filepath.Join(kdir, pattern))
		for _, o := range old {
			if !strings.HasSuffix(filepath.Base(o), "-"+release) {
				os.RemoveAll(o)
			}
		}
	}
	return writeFileAtomic(filepath.Join(kdir, "release"), []byte(release+"\n"))
}

func writeFileAtomic(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// lockDir serialises fetches of one suite between processes: two apt-get
// runs on the same private state would fail on apt's own lock.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// aptState is a private apt configuration for one suite: its own sources
// list, package lists, cache and dpkg status, so nothing under /etc/apt or
// /var/lib/apt is read for sources or written.
type aptState struct {
	dir   string
	suite string
	conf  string
	log   io.Writer
}

func (f *Fetcher) aptState(suite Suite) (*aptState, error) {
	dir := filepath.Join(f.CacheDir, "apt", suite.dirName())
	for _, d := range []string{"lists/partial", "cache/archives/partial", "preferences.d", "debs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	a := &aptState{dir: dir, suite: suite.Name, conf: filepath.Join(dir, "apt.conf"), log: f.Log}
	files := map[string]string{
		"sources.list": sourcesList(f.Keyring, f.Mirror, suite.Name),
		"status":       "",
		"apt.conf":     aptConf(dir, suite),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// sourcesList is the suite, and for a backports suite also the suite it
// extends, as Debian documents backports: they carry only what they update,
// busybox-static not included.
func sourcesList(keyring, mirror, suite string) string {
	line := func(s string) string { return fmt.Sprintf("deb [signed-by=%s] %s %s main\n", keyring, mirror, s) }
	if base, ok := strings.CutSuffix(suite, "-backports"); ok {
		return line(suite) + line(base)
	}
	return line(suite)
}

// aptConf is read after the system's apt.conf.d, so proxies and similar
// settings still apply, while sources, state and hooks are replaced. The
// hooks are cleared because they act on the system (appstream refreshes its
// catalogue after every update, for instance).
func aptConf(dir string, suite Suite) string {
	q := func(p string) string { return `"` + filepath.Join(dir, p) + `"` }
	return strings.Join([]string{
		`Dir::State::Lists ` + q("lists") + `;`,
		`Dir::State::status ` + q("status") + `;`,
		`Dir::Etc::SourceList ` + q("sources.list") + `;`,
		`Dir::Etc::SourceParts "-";`,
		`Dir::Etc::Preferences ` + q("preferences") + `;`,
		`Dir::Etc::PreferencesParts ` + q("preferences.d") + `;`,
		`Dir::Cache ` + q("cache") + `;`,
		// The guest's architecture, whatever this machine's is.
		`APT::Architecture "` + suite.Arch + `";`,
		`APT::Architectures { "` + suite.Arch + `"; };`,
		// The suite wins over the base suite a backports suite comes with.
		`APT::Default-Release "` + suite.Name + `";`,
		`Acquire::Languages "none";`,
		// The cache is usually under a 0700 home that apt's _apt user cannot
		// enter; the signed Release file's hashes still check every download.
		`APT::Sandbox::User "root";`,
		`Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";`,
		`#clear APT::Update::Pre-Invoke;`,
		`#clear APT::Update::Post-Invoke;`,
		`#clear APT::Update::Post-Invoke-Success;`,
		`#clear DPkg::Pre-Invoke;`,
		`#clear DPkg::Post-Invoke;`,
		``,
	}, "\n")
}

func (a *aptState) run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, append([]string{"-c", a.conf}, args...)...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if a.log != nil && name == "apt-get" {
		cmd.Stdout = io.MultiWriter(&out, a.log)
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out.Bytes(), 10))
	}
	return out.Bytes(), nil
}

// update refreshes the private package lists. apt-get fails (exit 100) when
// a Release file does not verify against the keyring; the extra check below
// catches the warning-only cases, so an unsigned index is never used.
func (a *aptState) update(ctx context.Context) error {
	out, err := a.run(ctx, a.dir, "apt-get", "-q", "update")
	if err != nil {
		return fmt.Errorf("%w\nhint: a Release file that does not verify needs a newer debian-archive-keyring (or Fetcher.Keyring)", err)
	}
	for _, bad := range []string{"NO_PUBKEY", "GPG error", "is not signed", "EXPKEYSIG"} {
		if bytes.Contains(out, []byte(bad)) {
			return fmt.Errorf("apt-get update: %s's Release file did not verify: %s", a.suite, tail(out, 5))
		}
	}
	return nil
}

// resolveRelease reads the kernel release the metapackage depends on.
func (a *aptState) resolveRelease(ctx context.Context, meta string) (string, error) {
	out, err := a.run(ctx, a.dir, "apt-cache", "show", "--no-all-versions", meta)
	if err != nil {
		return "", err
	}
	return releaseFromDepends(out)
}

// releaseFromDepends finds "linux-image-<release>" in a package stanza's
// Depends, e.g. "linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)" yields
// "6.1.0-50-cloud-amd64".
func releaseFromDepends(stanza []byte) (string, error) {
	for _, line := range strings.Split(string(stanza), "\n") {
		deps, ok := strings.CutPrefix(line, "Depends:")
		if !ok {
			continue
		}
		for _, alt := range strings.FieldsFunc(deps, func(r rune) bool { return r == ',' || r == '|' }) {
			f := strings.Fields(alt)
			if len(f) == 0 {
				continue
			}
			// linux-image-cloud-<arch> is another metapackage, never a release.
			if rel, ok := strings.CutPrefix(f[0], "linux-image-"); ok && !strings.HasPrefix(rel, "cloud-") {
				return rel, nil
			}
		}
	}
	return "", errors.New("no linux-image-<release> dependency in the cloud kernel's metapackage")
}

// kernelPackages are where Debian has shipped the image, newest packaging
// first: sid's linux-image-<rel> is a wrapper around linux-binary-<rel>, while
// older suites put it in the -unsigned package (the plain one is signed for
// Secure Boot, which QEMU does not need).
func kernelPackages(release string) []string {
	return []string{
		"linux-binary-" + release,
		"linux-image-" + release + "-unsigned",
		"linux-image-" + release,
	}
}

// companionPackages hold, since Debian split the kernel packages (7.x), the
// modules and the config that older suites ship in the image package.
func companionPackages(release string) []string {
	return []string{"linux-modules-" + release, "linux-base-" + release}
}

// downloadKernel fetches the image package and any companions, and keeps
// the image, the config and the virtio modules.
func (a *aptState) downloadKernel(ctx context.Context, k Kernel) error {
	pkg, err := a.findPackage(ctx, kernelPackages(k.Release))
	if err != nil {
		return err
	}
	pkgs := []string{pkg}
	for _, c := range companionPackages(k.Release) {
		if a.hasPackage(ctx, c) {
			pkgs = append(pkgs, c)
		}
	}
	debs, err := a.download(ctx, pkgs...)
	if err != nil {
		return err
	}
	defer removeAll(debs)
	if err := os.RemoveAll(k.modulesDir()); err != nil {
		return err
	}
	if err := os.MkdirAll(k.modulesDir(), 0o755); err != nil {
		return err
	}
	x := extractor{release: k.Release, vmlinuz: k.Vmlinuz, config: k.Config, modules: k.modulesDir()}
	for _, deb := range debs {
		if err := x.extract(ctx, deb); err != nil {
			return fmt.Errorf("extracting %s: %w", filepath.Base(deb), err)
		}
	}
	if !x.foundKernel {
		return fmt.Errorf("no vmlinuz for %s in %s", k.Release, strings.Join(pkgs, ", "))
	}
	if !x.foundConfig {
		return fmt.Errorf("no config for %s in %s", k.Release, strings.Join(pkgs, ", "))
	}
	return checkRelease(k.Vmlinuz, k.Release)
}

// downloadBusybox fetches busybox-static for arch, for guests of an
// architecture this machine's own busybox cannot run on.
func (a *aptState) downloadBusybox(ctx context.Context, dst, arch string) error {
	debs, err := a.download(ctx, "busybox-static")
	if err != nil {
		return err
	}
	defer removeAll(debs)
	want := func(name string) bool {
		name = path.Clean("/" + name)
		return name == "/bin/busybox" || name == "/usr/bin/busybox"
	}
	found, err := extractFiles(ctx, debs[0], func(name string) string {
		if want(name) {
			return dst
		}
		return ""
	})
	if err != nil {
		return err
	}
	if found == 0 {
		return errors.New("no busybox in busybox-static")
	}
	a2, _ := LookupArch(arch)
	if err := errors.Join(checkStatic(dst), checkMachine(dst, a2.ELF)); err != nil {
		os.Remove(dst)
		return err
	}
	return os.Chmod(dst, 0o755)
}

// download runs apt-get download and returns the .deb files, in the order
// of pkgs.
func (a *aptState) download(ctx context.Context, pkgs ...string) ([]string, error) {
	dir := filepath.Join(a.dir, "debs")
	old, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	removeAll(old)
	if _, err := a.run(ctx, dir, "apt-get", append([]string{"-q", "download"}, pkgs...)...); err != nil {
		return nil, err
	}
	var debs []string
	for _, p := range pkgs {
		got, _ := filepath.Glob(filepath.Join(dir, p+"_*.deb"))
		if len(got) != 1 {
			return nil, fmt.Errorf("apt-get download %s left %d .deb files", p, len(got))
		}
		debs = append(debs, got[0])
	}
	return debs, nil
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

func (a *aptState) hasPackage(ctx context.Context, p string) bool {
	out, err := a.run(ctx, a.dir, "apt-cache", "show", "--no-all-versions", p)
	return err == nil && bytes.Contains(out, []byte("Package: "+p+"\n"))
}

func (a *aptState) findPackage(ctx context.Context, candidates []string) (string, error) {
	for _, p := range candidates {
		if a.hasPackage(ctx, p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %s is in the archive", strings.Join(candidates, ", "))
}

// isKernelPath reports whether a data.tar entry is the image for release:
// /boot/vmlinuz-<rel> (up to trixie) or /usr/lib/modules/<rel>/vmlinuz.
func isKernelPath(name, release string) bool {
	name = path.Clean("/" + name)
	return name == "/boot/vmlinuz-"+release ||
		name == "/usr/lib/modules/"+release+"/vmlinuz" ||
		name == "/lib/modules/"+release+"/vmlinuz"
}

// isConfigPath is isKernelPath for the kernel's config.
func isConfigPath(name, release string) bool {
	name = path.Clean("/" + name)
	return name == "/boot/config-"+release ||
		name == "/usr/lib/modules/"+release+"/config" ||
		name == "/lib/modules/"+release+"/config"
}

// moduleFile returns the file name of a virtio module of release
// ("virtio_blk.ko.xz"), or "" for any other entry. All virtio modules are
// kept: which of them a guest needs is decided from their dependencies.
func moduleFile(name, release string) string {
	name = path.Clean("/" + name)
	if !strings.HasPrefix(name, "/usr/lib/modules/"+release+"/kernel/") &&
		!strings.HasPrefix(name, "/lib/modules/"+release+"/kernel/") {
		return ""
	}
	base := path.Base(name)
	if !strings.HasPrefix(base, "virtio") || moduleName(base) == "" {
		return ""
	}
	return base
}

// extractor keeps what the lab needs from a kernel's packages.
type extractor struct {
	release, vmlinuz, config, modules string
	foundKernel, foundConfig          bool
}

func (x *extractor) extract(ctx context.Context, deb string) error {
	_, err := extractFiles(ctx, deb, func(name string) string {
		switch {
		case isKernelPath(name, x.release):
			x.foundKernel = true
			return x.vmlinuz
		case isConfigPath(name, x.release):
			x.foundConfig = true
			return x.config
		case moduleFile(name, x.release) != "":
			return filepath.Join(x.modules, moduleFile(name, x.release))
		}
		return ""
	})
	return err
}

// extractFiles streams a package's data through dpkg-deb, which knows
// every compression Debian uses, and writes each regular file for which
// dst returns a path there. It returns how many it wrote.
func extractFiles(ctx context.Context, deb string, dst func(name string) string) (int, error) {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n, err := copyFiles(tar.NewReader(stdout), dst)
	io.Copy(io.Discard, stdout)
	if werr := cmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("dpkg-deb: %w: %s", werr, stderr.String())
	}
	return n, err
}

func copyFiles(tr *tar.Reader, dst func(string) string) (int, error) {
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		p := ""
		if h.Typeflag == tar.TypeReg {
			p = dst(h.Name)
		}
		if p == "" {
			continue
		}
		if err := writeFrom(p, tr); err != nil {
			return n, err
		}
		n++
	}
}

// writeFrom writes r to p through a temporary file, so that an interrupted
// download never leaves a truncated file under the final name.
func writeFrom(p string, r io.Reader) error {
	tmp := p + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, p)
}

func checkRelease(vmlinuz, want string) error {
	got, err := KernelRelease(vmlinuz)
	if err != nil {
		return err
	}
	if got != want {
		os.Remove(vmlinuz)
		return fmt.Errorf("%s is release %s, expected %s", vmlinuz, got, want)
	}
	return nil
}
