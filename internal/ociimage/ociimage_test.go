package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// fakeBinaries writes a distinct "binary" per architecture.
func fakeBinaries(t *testing.T) map[string]string {
	dir := t.TempDir()
	bins := map[string]string{}
	for _, a := range []string{"amd64", "arm64"} {
		p := filepath.Join(dir, "cgrstat-linux-"+a)
		if err := os.WriteFile(p, bytes.Repeat([]byte(a), 1000), 0o755); err != nil {
			t.Fatal(err)
		}
		bins[a] = p
	}
	return bins
}

// hashTree is the SHA-256 of every file below dir, by relative path.
func hashTree(t *testing.T, dir string) map[string][32]byte {
	sums := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		sums[rel] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

// TestReproducible: two builds from the same binaries, at different times,
// write the same layout and the same archive, byte for byte.
func TestReproducible(t *testing.T) {
	o := Options{Binaries: fakeBinaries(t), Version: "v1.2.3", Created: time.Unix(1700000000, 0).UTC(), Source: "example"}
	var layouts [2]map[string][32]byte
	var archives [2][32]byte
	for i := range 2 {
		dir := t.TempDir()
		if _, err := Build(o, filepath.Join(dir, "oci"), filepath.Join(dir, "oci.tar")); err != nil {
			t.Fatal(err)
		}
		layouts[i] = hashTree(t, filepath.Join(dir, "oci"))
		b, err := os.ReadFile(filepath.Join(dir, "oci.tar"))
		if err != nil {
			t.Fatal(err)
		}
		archives[i] = sha256.Sum256(b)
		time.Sleep(1100 * time.Millisecond) // a build must not depend on the clock
	}
	if len(layouts[0]) != 2+1+2*3 { // oci-layout, index.json, the inner index, per arch manifest, config, layer
		t.Errorf("layout holds %d files, want 9", len(layouts[0]))
	}
	for k, v := range layouts[0] {
		if layouts[1][k] != v {
			t.Errorf("%s differs between two builds", k)
		}
	}
	if archives[0] != archives[1] {
		t.Error("the OCI archive differs between two builds")
	}
	o.Binaries["amd64"] = o.Binaries["arm64"]
	d1, _ := Index(o)
	h, _ := d1.Digest()
	dir := t.TempDir()
	d0, err := Build(Options{Binaries: fakeBinaries(t), Version: "v1.2.3", Created: o.Created, Source: "example"}, filepath.Join(dir, "oci"), "")
	if err != nil {
		t.Fatal(err)
	}
	if h == d0 {
		t.Error("another binary gave the same index digest")
	}
}

// TestImage: one image per architecture under the index, each running the
// binary as root, with the binary's file capabilities in its one layer.
func TestImage(t *testing.T) {
	o := Options{Binaries: fakeBinaries(t), Version: "v1.2.3", Created: time.Unix(1700000000, 0).UTC(), Source: "example"}
	dir := filepath.Join(t.TempDir(), "oci")
	if _, err := Build(o, dir, ""); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, _ := top.IndexManifest()
	if len(tm.Manifests) != 1 || tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "cgrstat:v1.2.3" {
		t.Fatalf("index.json: %+v", tm.Manifests)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("image index has %d manifests, want 2", len(im.Manifests))
	}
	for i, arch := range []string{"amd64", "arm64"} {
		d := im.Manifests[i]
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != arch {
			t.Errorf("manifest %d: platform %+v, want linux/%s", i, d.Platform, arch)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != arch || cf.Config.User != User || cf.Config.Entrypoint[0] != Binary || !cf.Created.Time.Equal(o.Created) {
			t.Errorf("%s config: %+v", arch, cf)
		}
		layers, _ := img.Layers()
		if len(layers) != 1 {
			t.Fatalf("%s: %d layers, want 1", arch, len(layers))
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		seen := map[string]bool{}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seen[h.Name] = true
			if !h.ModTime.Equal(o.Created) {
				t.Errorf("%s: %s has time %v", arch, h.Name, h.ModTime)
			}
			if h.Name == "cgrstat" {
				body, _ := io.ReadAll(tr)
				want, _ := os.ReadFile(o.Binaries[arch])
				if !bytes.Equal(body, want) || h.Mode != 0o755 || h.Uid != 0 {
					t.Errorf("%s: /cgrstat is not the %s binary, mode 0755, owned by root", arch, arch)
				}
				if h.PAXRecords["SCHILY.xattr.security.capability"] != string(FileCaps()) {
					t.Errorf("%s: /cgrstat has no file capabilities", arch)
				}
			}
			if h.Name == "run/cgrstat/" && (h.Uid != 0 || h.Mode != 0o1777) {
				t.Errorf("%s: /run/cgrstat owned by %d, mode %o", arch, h.Uid, h.Mode)
			}
		}
		rc.Close()
		if !seen["cgrstat"] || !seen["run/cgrstat/"] {
			t.Errorf("%s layer holds %v", arch, seen)
		}
	}
}

// TestFileCaps: the attribute setcap(8) writes for cap_bpf,cap_perfmon=ep
// (getfattr -n security.capability -e hex: 0x01000002 00000000 00000000
// c0000000 00000000).
func TestFileCaps(t *testing.T) {
	want := []byte{1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(FileCaps(), want) {
		t.Errorf("FileCaps() = % x, want % x", FileCaps(), want)
	}
}
