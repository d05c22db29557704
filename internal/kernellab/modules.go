package kernellab

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// diskModules are what a guest needs for its virtio-blk scratch disk: the
// PCI transport (QEMU's virtio-blk-pci, on both architectures) and the
// block driver, each named by its config symbol. Their dependencies (the
// virtio core, the ring, the PCI helpers) come from the modules themselves.
var diskModules = []struct{ symbol, module string }{
	{"CONFIG_VIRTIO_PCI", "virtio_pci"},
	{"CONFIG_VIRTIO_BLK", "virtio_blk"},
}

// moduleName is the module a file holds ("virtio_pci_legacy_dev" for
// "virtio_pci_legacy_dev.ko.xz"), or "" if it is not a module.
func moduleName(file string) string {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if stem, ok := strings.CutSuffix(file, ext); ok {
			return strings.ReplaceAll(stem, "-", "_")
		}
	}
	return ""
}

// resolveModules decompresses the modules extracted for k (busybox insmod
// takes plain .ko files only), works out which the guest must load and in
// which order, and writes that order last, so that a cache without it is
// known to be incomplete.
func resolveModules(ctx context.Context, k Kernel) error {
	dir := k.modulesDir()
	files, err := decompressModules(ctx, dir)
	if err != nil {
		return err
	}
	cfg, err := ReadConfig(k.Config)
	if err != nil {
		return err
	}
	var want []string
	for _, m := range diskModules {
		switch cfg[m.symbol] {
		case "y":
		case "m":
			want = append(want, m.module)
		default:
			return fmt.Errorf("%s: %s is not set: the guest cannot see its virtio-blk disk", k.Release, m.symbol)
		}
	}
	order, err := loadOrder(want, files, moduleDepends)
	if err != nil {
		return fmt.Errorf("%s: %w", k.Release, err)
	}
	for name, f := range files {
		if !slices.Contains(order, filepath.Base(f)) {
			os.Remove(f)
			delete(files, name)
		}
	}
	return writeFileAtomic(filepath.Join(dir, "order"), []byte(strings.Join(order, "\n")+"\n"))
}

// decompressModules turns every module file in dir into a plain .ko and
// returns them by module name.
func decompressModules(ctx context.Context, dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range entries {
		name := moduleName(e.Name())
		if name == "" {
			continue
		}
		src := filepath.Join(dir, e.Name())
		dst := filepath.Join(dir, name+".ko")
		if src != dst {
			if err := decompress(ctx, src, dst); err != nil {
				return nil, fmt.Errorf("decompressing %s: %w", e.Name(), err)
			}
			os.Remove(src)
		}
		files[name] = dst
	}
	return files, nil
}

func decompress(ctx context.Context, src, dst string) error {
	var tool []string
	switch filepath.Ext(src) {
	case ".ko": // a file name with '-', which module names spell '_'
		return os.Rename(src, dst)
	case ".gz":
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		return writeFrom(dst, zr)
	case ".xz":
		tool = []string{"xz", "-dc", src} // Debian package xz-utils
	case ".zst":
		tool = []string{"zstd", "-dcq", src} // Debian package zstd
	default:
		return fmt.Errorf("unknown compression")
	}
	cmd := exec.CommandContext(ctx, tool[0], tool[1:]...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool[0], err, strings.TrimSpace(stderr.String()))
	}
	return writeFrom(dst, &out)
}

// loadOrder lists the files to insmod so that every module comes after the
// modules it depends on (their .modinfo "depends=" field, which is what
// depmod reads too).
func loadOrder(want []string, files map[string]string, depends func(ko string) ([]string, error)) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		f, ok := files[name]
		if !ok {
			if from == "" {
				return fmt.Errorf("module %s is not in the kernel's packages", name)
			}
			return fmt.Errorf("module %s needs %s, which is not in the kernel's packages", from, name)
		}
		state[name] = 1
		deps, err := depends(f)
		if err != nil {
			return err
		}
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, filepath.Base(f))
		return nil
	}
	for _, w := range want {
		if err := visit(w, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends reads the "depends=" entry of a module's .modinfo section.
func moduleDepends(ko string) ([]string, error) {
	f, err := elf.Open(ko)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s has no .modinfo section", ko)
	}
	b, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var deps []string
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					deps = append(deps, d)
				}
			}
			return deps, nil
		}
	}
	return nil, nil
}

// ReadConfig parses a kernel config: "CONFIG_X=y" lines and "# CONFIG_X is
// not set" (which maps X to "n").
func ReadConfig(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseConfig(f)
}

func parseConfig(r io.Reader) (map[string]string, error) {
	cfg := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if sym, ok := strings.CutPrefix(line, "# "); ok {
			if sym, ok := strings.CutSuffix(sym, " is not set"); ok {
				cfg[sym] = "n"
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = strings.Trim(v, `"`)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(cfg) == 0 {
		return nil, errors.New("not a kernel config")
	}
	return cfg, nil
}

// CgroupV1 reports whether the kernel can mount the memory controller on a
// cgroup v1 hierarchy, and if not, why, from its config: CONFIG_MEMCG_V1
// (6.11 and later) is what keeps it, and older kernels always have it.
func (k Kernel) CgroupV1() (bool, string, error) {
	cfg, err := ReadConfig(k.Config)
	if err != nil {
		return false, "", err
	}
	switch {
	case cfg["CONFIG_MEMCG"] != "y":
		return false, "CONFIG_MEMCG is not set", nil
	case cfg["CONFIG_MEMCG_V1"] == "n":
		return false, "CONFIG_MEMCG_V1 is not set", nil
	}
	return true, "", nil
}
