// Package ociimage builds cgrstat's container image: one layer holding the
// static binary on an empty base, for each architecture, under one OCI
// image index, written as an OCI image layout and as an OCI archive (the
// layout in a tar file).
//
// The build reads nothing but the binaries and needs no daemon, registry or
// root. Every byte is a function of the binaries and the options: files in
// the layer have fixed owners, modes and times, the image's creation time is
// Options.Created, and the archive's entries are sorted with fixed headers,
// so two builds from the same binaries are byte for byte the same.
package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is the numeric user and group the image runs as: root, holding only
// the capabilities the runtime gives (CAP_BPF and CAP_PERFMON in
// deploy/kubernetes). Not nobody: bpffs, where cgrstat pins, is mounted
// with mode 0700 by systemd (and by cgrstat), so only root, or a user with
// CAP_DAC_OVERRIDE, can reach a pin path on it. The binary's file
// capabilities (see FileCaps) let a non-root user run serve where an
// administrator has given it a directory on bpffs.
const User = "0:0"

// Binary is where the binary lies in the image; LockDir is cgrstat's lock
// directory (loader.LockDir), made in the image and open to all as /tmp is
// (1777): a container whose /run is not mounted over can take
// the pin path's lock as any user, and runc gives a tmpfs mounted over it
// (podman --tmpfs) the mode of the directory below, not the mount's.
const (
	Binary  = "/cgrstat"
	LockDir = "/run/cgrstat"
)

// Port is serve's default port (cmd/cgrstat's defaultListen).
const Port = "9863/tcp"

// Options says what to build.
type Options struct {
	// Binaries maps a GOARCH (amd64, arm64) to the static cgrstat binary
	// built for it.
	Binaries map[string]string
	// Version goes into the image's labels and the layout's reference.
	Version string
	// Created is the image's creation time, and the time of every file in
	// the layer: the commit's time, so that it does not depend on when the
	// build ran.
	Created time.Time
	// Source names the repository in the image's labels.
	Source string
}

// Build writes the image index to an OCI image layout in dir (which must not
// exist) and, when archive is not empty, the same layout as an OCI archive.
// It returns the index's digest.
func Build(o Options, dir, archive string) (v1.Hash, error) {
	idx, err := Index(o)
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := os.Stat(dir); err == nil {
		return v1.Hash{}, fmt.Errorf("%s exists already", dir)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": RefName(o.Version),
	})); err != nil {
		return v1.Hash{}, err
	}
	if archive != "" {
		if err := writeArchive(dir, archive, o.Created); err != nil {
			return v1.Hash{}, err
		}
	}
	return idx.Digest()
}

// RefName names the image in the layout: podman load and
// oci:DIR:cgrstat:VERSION find it by this name.
func RefName(version string) string { return "cgrstat:" + version }

// Index is the multi-architecture image index, in GOARCH order.
func Index(o Options) (v1.ImageIndex, error) {
	if len(o.Binaries) == 0 {
		return nil, fmt.Errorf("no binaries")
	}
	arches := make([]string, 0, len(o.Binaries))
	for a := range o.Binaries {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range arches {
		img, err := image(o, arch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return idx, nil
}

func image(o Options, arch string) (v1.Image, error) {
	bin, err := os.ReadFile(o.Binaries[arch])
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(bin, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: o.Created},
			CreatedBy: "cgrstat internal/ociimage: " + Binary + " with file capabilities cap_bpf,cap_perfmon=ep",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		Entrypoint:   []string{Binary},
		Cmd:          []string{"serve"},
		User:         User,
		ExposedPorts: map[string]struct{}{Port: {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "cgrstat",
			"org.opencontainers.image.description": "memory-cgroup reclaim latency per cgroup, as Prometheus metrics",
			"org.opencontainers.image.version":     o.Version,
			"org.opencontainers.image.source":      o.Source,
			"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
		},
	}
	return mutate.ConfigFile(img, cf)
}

// FileCaps is the security.capability extended attribute that gives the
// binary CAP_BPF and CAP_PERFMON, permitted and effective, when a user
// without them executes it (struct vfs_cap_data, revision 2, little
// endian): the kernel then grants them as far as the bounding set allows,
// which is what a container's capability list sets. This is how a non-root
// container gets capabilities: a runtime puts added capabilities of a
// non-root container in its bounding set only, never in the ambient set.
func FileCaps() []byte {
	const (
		revision2  = 0x02000000 // VFS_CAP_REVISION_2
		effective  = 0x000001   // VFS_CAP_FLAGS_EFFECTIVE
		capPerfmon = 38
		capBPF     = 39
	)
	var b [20]byte
	binary.LittleEndian.PutUint32(b[0:], revision2|effective)
	// data[0] (capabilities 0-31) permitted, inheritable: none;
	// data[1] (32-63) permitted: CAP_PERFMON and CAP_BPF; inheritable: none.
	binary.LittleEndian.PutUint32(b[12:], 1<<(capPerfmon-32)|1<<(capBPF-32))
	return b[:]
}

// rootfs is the layer: the binary with its file capabilities, and the lock
// directory.
func rootfs(bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX}
	}
	entries := []*tar.Header{
		{Typeflag: tar.TypeReg, Name: Binary[1:], Mode: 0o755, Size: int64(len(bin)), ModTime: mtime, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": string(FileCaps())}},
		dir("run/", 0o755, 0),
		dir(LockDir[1:]+"/", 0o1777, 0),
	}
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bin); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeArchive writes the layout in dir as an OCI archive: a tar of its
// files, sorted, with fixed owners, modes and times.
func writeArchive(dir, archive string, mtime time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		names = append(names, path)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, path := range names {
		rel, _ := filepath.Rel(dir, path)
		st, err := os.Stat(path)
		if err != nil {
			f.Close()
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX, Mode: 0o644, Typeflag: tar.TypeReg, Size: st.Size()}
		if st.IsDir() {
			h.Name, h.Mode, h.Typeflag, h.Size = h.Name+"/", 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			f.Close()
			return err
		}
		if !st.IsDir() {
			data, err := os.ReadFile(path)
			if err == nil {
				_, err = tw.Write(data)
			}
			if err != nil {
				f.Close()
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
