package kernellab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KernelRelease reads the release ("6.1.0-50-cloud-amd64") from a kernel
// image without booting it, so that a kernel given with -kernel gets a name
// too. An x86 bzImage's setup header points at the version string
// (Documentation/arch/x86/boot.rst, field kernel_version); an arm64 Image,
// which Debian ships uncompressed, holds the kernel's banner as it is.
func KernelRelease(vmlinuz string) (string, error) {
	f, err := os.Open(vmlinuz)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 0x400)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return "", fmt.Errorf("reading %s: %w", vmlinuz, err)
	}
	if string(hdr[0x38:0x3c]) == "ARM\x64" {
		return bannerRelease(f)
	}
	off, err := versionOffset(hdr)
	if err != nil {
		return "", fmt.Errorf("%s: %w", vmlinuz, err)
	}
	buf := make([]byte, 256)
	n, err := f.ReadAt(buf, off)
	if n == 0 {
		return "", fmt.Errorf("reading %s's version: %w", vmlinuz, err)
	}
	return releaseFromVersion(buf[:n])
}

func versionOffset(hdr []byte) (int64, error) {
	if string(hdr[0x202:0x206]) != "HdrS" {
		return 0, errors.New("not a bzImage (no HdrS magic)")
	}
	if binary.LittleEndian.Uint16(hdr[0x206:]) < 0x0200 {
		return 0, errors.New("boot protocol too old to carry a version string")
	}
	ptr := binary.LittleEndian.Uint16(hdr[0x20e:])
	if ptr == 0 {
		return 0, errors.New("bzImage has no version string")
	}
	return int64(ptr) + 0x200, nil
}

// releaseFromVersion takes the first word of "6.1.0-50-cloud-amd64
// (debian-kernel@lists.debian.org) #1 SMP ...".
func releaseFromVersion(b []byte) (string, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "", errors.New("empty version string")
	}
	return f[0], nil
}

// bannerRelease finds "Linux version <release> (" in an uncompressed image.
func bannerRelease(f *os.File) (string, error) {
	b, err := io.ReadAll(f)
	if err != nil {
		return "", err
	}
	for rest := b; ; {
		i := bytes.Index(rest, []byte("Linux version "))
		if i < 0 {
			return "", fmt.Errorf("%s: no Linux version banner", f.Name())
		}
		rest = rest[i+len("Linux version "):]
		rel, _, ok := bytes.Cut(rest[:min(len(rest), 128)], []byte(" ("))
		if ok && len(rel) > 0 && !bytes.ContainsAny(rel, " %\x00") {
			return string(rel), nil
		}
	}
}
