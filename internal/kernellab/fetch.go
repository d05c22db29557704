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

// metaPackage depends on the suite's current cloud kernel. The cloud flavour
// is small, has BTF and virtio, and its memory cgroup is built in.
const metaPackage = "linux-image-cloud-amd64"

// Suite is a Debian suite whose kernel the lab boots.
type Suite struct{ Name string }

func (s Suite) String() string { return s.Name }

// DefaultSuites is the lab's matrix, as ParseSuites reads it: the oldest
// kernel cgrstat supports, the current stable one, and the newest.
const DefaultSuites = "bookworm,trixie,sid"

var suiteName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// ParseSuites parses a comma-separated list of suite names.
func ParseSuites(s string) ([]Suite, error) {
	var out []Suite
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !suiteName.MatchString(n) {
			return nil, fmt.Errorf("invalid suite name %q", n)
		}
		out = append(out, Suite{n})
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

// FetchKernel returns the path of the suite's current cloud kernel and its
// release, fetching it into cacheDir unless a fresh copy is there.
func FetchKernel(ctx context.Context, suite Suite, cacheDir string) (vmlinuz, release string, err error) {
	f := Fetcher{CacheDir: cacheDir}
	return f.Fetch(ctx, suite)
}

// Fetch is FetchKernel with f's settings.
func (f *Fetcher) Fetch(ctx context.Context, suite Suite) (vmlinuz, release string, err error) {
	vmlinuz, release, err = f.fetch(ctx, suite)
	if err != nil {
		return "", "", fmt.Errorf("fetching %s kernel: %w", suite, err)
	}
	return vmlinuz, release, nil
}

func (f *Fetcher) fetch(ctx context.Context, suite Suite) (string, string, error) {
	if !suiteName.MatchString(suite.Name) {
		return "", "", fmt.Errorf("invalid suite name %q", suite.Name)
	}
	if err := f.defaults(); err != nil {
		return "", "", err
	}
	kdir := filepath.Join(f.CacheDir, "kernels", suite.Name)
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		return "", "", err
	}
	unlock, err := lockDir(kdir)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	if p, rel, ok := f.cached(kdir); ok {
		return p, rel, nil
	}
	apt, err := f.aptState(suite)
	if err != nil {
		return "", "", err
	}
	if err := apt.update(ctx); err != nil {
		return "", "", err
	}
	release, err := apt.resolveRelease(ctx)
	if err != nil {
		return "", "", err
	}
	p := filepath.Join(kdir, "vmlinuz-"+release)
	if _, err := os.Stat(p); err != nil {
		if err := apt.downloadKernel(ctx, release, p); err != nil {
			return "", "", err
		}
	}
	if err := markCurrent(kdir, release); err != nil {
		return "", "", err
	}
	return p, release, nil
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
func (f *Fetcher) cached(kdir string) (string, string, bool) {
	if f.Refresh {
		return "", "", false
	}
	fi, err := os.Stat(filepath.Join(kdir, "release"))
	if err != nil || time.Since(fi.ModTime()) > f.MaxAge {
		return "", "", false
	}
	b, err := os.ReadFile(filepath.Join(kdir, "release"))
	rel := strings.TrimSpace(string(b))
	if err != nil || rel == "" {
		return "", "", false
	}
	p := filepath.Join(kdir, "vmlinuz-"+rel)
	if _, err := os.Stat(p); err != nil {
		return "", "", false
	}
	return p, rel, true
}

// markCurrent records release as the suite's kernel and drops older ones.
func markCurrent(kdir, release string) error {
	old, _ := filepath.Glob(filepath.Join(kdir, "vmlinuz-*"))
	for _, o := range old {
		if filepath.Base(o) != "vmlinuz-"+release {
			os.Remove(o)
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
	dir := filepath.Join(f.CacheDir, "apt", suite.Name)
	for _, d := range []string{"lists/partial", "cache/archives/partial", "preferences.d", "debs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	a := &aptState{dir: dir, suite: suite.Name, conf: filepath.Join(dir, "apt.conf"), log: f.Log}
	files := map[string]string{
		"sources.list": fmt.Sprintf("deb [signed-by=%s] %s %s main\n", f.Keyring, f.Mirror, suite.Name),
		"status":       "",
		"apt.conf":     aptConf(dir),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// aptConf is read after the system's apt.conf.d, so proxies and similar
// settings still apply, while sources, state and hooks are replaced. The
// hooks are cleared because they act on the system (appstream refreshes its
// catalogue after every update, for instance).
func aptConf(dir string) string {
	q := func(p string) string { return `"` + filepath.Join(dir, p) + `"` }
	return strings.Join([]string{
		`Dir::State::Lists ` + q("lists") + `;`,
		`Dir::State::status ` + q("status") + `;`,
		`Dir::Etc::SourceList ` + q("sources.list") + `;`,
		`Dir::Etc::SourceParts "-";`,
		`Dir::Etc::Preferences ` + q("preferences") + `;`,
		`Dir::Etc::PreferencesParts ` + q("preferences.d") + `;`,
		`Dir::Cache ` + q("cache") + `;`,
		`APT::Architecture "amd64";`,
		`APT::Architectures { "amd64"; };`,
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
func (a *aptState) resolveRelease(ctx context.Context) (string, error) {
	out, err := a.run(ctx, a.dir, "apt-cache", "show", "--no-all-versions", metaPackage)
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
			if rel, ok := strings.CutPrefix(f[0], "linux-image-"); ok && rel != "cloud-amd64" {
				return rel, nil
			}
		}
	}
	return "", fmt.Errorf("no linux-image-<release> dependency in %s", metaPackage)
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

func (a *aptState) downloadKernel(ctx context.Context, release, dst string) error {
	pkg, err := a.findPackage(ctx, kernelPackages(release))
	if err != nil {
		return err
	}
	debs := filepath.Join(a.dir, "debs")
	old, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	for _, o := range old {
		os.Remove(o)
	}
	if _, err := a.run(ctx, debs, "apt-get", "-q", "download", pkg); err != nil {
		return err
	}
	got, _ := filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
	if len(got) != 1 {
		return fmt.Errorf("apt-get download %s left %d .deb files", pkg, len(got))
	}
	defer os.Remove(got[0])
	if err := extractKernel(ctx, got[0], release, dst); err != nil {
		return fmt.Errorf("extracting %s: %w", filepath.Base(got[0]), err)
	}
	return nil
}

func (a *aptState) findPackage(ctx context.Context, candidates []string) (string, error) {
	for _, p := range candidates {
		out, err := a.run(ctx, a.dir, "apt-cache", "show", "--no-all-versions", p)
		if err == nil && bytes.Contains(out, []byte("Package: "+p+"\n")) {
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

// extractKernel streams the package's data through dpkg-deb, which knows
// every compression Debian uses, and keeps only the kernel image.
func extractKernel(ctx context.Context, deb, release, dst string) error {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	found, err := copyKernel(tar.NewReader(stdout), release, dst)
	io.Copy(io.Discard, stdout)
	if werr := cmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("dpkg-deb: %w: %s", werr, stderr.String())
	}
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no vmlinuz for %s in the package", release)
	}
	return checkRelease(dst, release)
}

func copyKernel(tr *tar.Reader, release, dst string) (bool, error) {
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if h.Typeflag != tar.TypeReg || !isKernelPath(h.Name, release) {
			continue
		}
		tmp := dst + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			return false, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return false, err
		}
		return true, os.Rename(tmp, dst)
	}
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
