package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name string
		line string
		want mount
		ok   bool
	}{
		{
			name: "v1 memory",
			line: "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
			want: mount{root: "/", point: "/sys/fs/cgroup/memory", fstype: "cgroup", superOpts: []string{"rw", "memory"}},
			ok:   true,
		},
		{
			name: "v2 with optional fields",
			line: "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot",
			want: mount{root: "/", point: "/sys/fs/cgroup", fstype: "cgroup2", superOpts: []string{"rw", "nsdelegate", "memory_recursiveprot"}},
			ok:   true,
		},
		{
			name: "octal escapes in root and mount point",
			line: `35 31 0:32 /a\040b\011c /mnt/mem\040cg\134x\012y rw - cgroup cgroup rw,memory`,
			want: mount{root: "/a b\tc", point: "/mnt/mem cg\\x\ny", fstype: "cgroup", superOpts: []string{"rw", "memory"}},
			ok:   true,
		},
		{
			name: "escape at the very end",
			line: `35 31 0:32 / /mnt/m\040 rw - cgroup cgroup rw,memory`,
			want: mount{root: "/", point: "/mnt/m ", fstype: "cgroup", superOpts: []string{"rw", "memory"}},
			ok:   true,
		},
		{
			name: "backslash not followed by three octal digits is kept",
			line: `35 31 0:32 / /mnt/a\9b\04 rw - cgroup cgroup rw,memory`,
			want: mount{root: "/", point: `/mnt/a\9b\04`, fstype: "cgroup", superOpts: []string{"rw", "memory"}},
			ok:   true,
		},
		{
			name: "not a cgroup",
			line: "28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw",
		},
		{
			name: "tmpfs under /sys/fs/cgroup",
			line: "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
		},
		{name: "no separator", line: "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime cgroup cgroup rw,memory"},
		{name: "too few fields before the separator", line: "35 31 0:32 / - cgroup cgroup rw,memory"},
		{name: "too few fields after the separator", line: "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup"},
		{name: "empty", line: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseMountinfo(tt.line)
			if ok != tt.ok {
				t.Fatalf("parseMountinfo(%q) ok = %v, want %v", tt.line, ok, tt.ok)
			}
			if ok && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseMountinfo(%q) = %#v, want %#v", tt.line, got, tt.want)
			}
		})
	}
}

// escapeMountinfo escapes a path as the kernel writes it into mountinfo.
func escapeMountinfo(p string) string {
	return strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`).Replace(p)
}

// fakeV2Mount makes a directory standing in for a cgroup2 mount whose
// cgroup.controllers lists controllers. Its name has a space, so that the
// fixture exercises mountinfo's escapes too.
func fakeV2Mount(t *testing.T, controllers string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cgroup two")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte(controllers+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fixture copies testdata/<name>/{mountinfo,cgroup} to a temporary
// directory, with @UNIFIED@ replaced by unified, and returns their paths.
func fixture(t *testing.T, name, unified string) (mountinfo, self string) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"mountinfo", "cgroup"} {
		b, err := os.ReadFile(filepath.Join("testdata", name, f))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Contains(s, "@UNIFIED@") {
			if unified == "" {
				t.Fatalf("fixture %s/%s needs a cgroup2 directory", name, f)
			}
			s = strings.ReplaceAll(s, "@UNIFIED@", escapeMountinfo(unified))
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "mountinfo"), filepath.Join(dir, "cgroup")
}

func TestDetect(t *testing.T) {
	type want struct {
		mount   string // "@UNIFIED@" for the fake cgroup2 directory
		version int
		v1ID    uint32
		own     string
		parent  string // DefaultParent().Rel
	}
	tests := []struct {
		name        string
		fixture     string
		controllers string // of the fake cgroup2 mount
		root        string // --cgroup-root; "@UNIFIED@" for the fake cgroup2 directory
		want        want
		wantErr     string // substring; "" for success
		wantIs      error
	}{
		{
			name: "v1 host like this one", fixture: "v1", controllers: "",
			want: want{mount: "/sys/fs/cgroup/memory", version: 1, v1ID: 4, own: "/process_api/abc", parent: "/process_api/abc"},
		},
		{
			name: "v1 with a cgroup2 mount that has only hugetlb", fixture: "v1", controllers: "hugetlb",
			want: want{mount: "/sys/fs/cgroup/memory", version: 1, v1ID: 4, own: "/process_api/abc", parent: "/process_api/abc"},
		},
		{
			name: "v1 own cgroup relative to the mount's root", fixture: "v1-nested",
			want: want{mount: "/sys/fs/cgroup/memory", version: 1, v1ID: 4, own: "/abc/def", parent: "/abc/def"},
		},
		{
			name: "v1 --cgroup-root with trailing slash", fixture: "v1", root: "/sys/fs/cgroup/memory/",
			want: want{mount: "/sys/fs/cgroup/memory", version: 1, v1ID: 4, own: "/process_api/abc", parent: "/process_api/abc"},
		},
		{
			name: "v2 host", fixture: "v2", controllers: "cpuset cpu io memory hugetlb pids rdma misc",
			want: want{mount: "@UNIFIED@", version: 2, own: "/user.slice/user-0.slice/session-1.scope", parent: "/"},
		},
		{
			name: "v2 --cgroup-root", fixture: "v2", controllers: "memory", root: "@UNIFIED@",
			want: want{mount: "@UNIFIED@", version: 2, own: "/user.slice/user-0.slice/session-1.scope", parent: "/"},
		},
		{
			name: "no memory controller anywhere", fixture: "nomem", controllers: "cpu io pids",
			wantIs: ErrNoMemoryController, wantErr: "no cgroup hierarchy with the memory controller",
		},
		{
			name: "v2 whose controllers merely contain the string memory", fixture: "nomem", controllers: "memoryx cpu",
			wantIs: ErrNoMemoryController,
		},
		{
			name: "--cgroup-root not a mount", fixture: "v1", root: "/sys/fs/cgroup/memory/process_api",
			wantErr: "cgroup root /sys/fs/cgroup/memory/process_api: not a cgroup mount point",
		},
		{
			name: "v1 --cgroup-root on the tmpfs above the hierarchies", fixture: "v1", root: "/sys/fs/cgroup/",
			want: want{mount: "/sys/fs/cgroup/memory", version: 1, v1ID: 4, own: "/process_api/abc", parent: "/process_api/abc"},
		},
		{
			name: "v1 --cgroup-root the host's hierarchies in a container", fixture: "v1-container", root: "/host/sys/fs/cgroup",
			want: want{mount: "/host/sys/fs/cgroup/memory", version: 1, v1ID: 4, own: "/process_api/abc/ctr/libpod-0123", parent: "/process_api/abc/ctr/libpod-0123"},
		},
		{
			name: "--cgroup-root a v1 mount without memory", fixture: "v1", root: "/sys/fs/cgroup/cpu",
			wantErr: "cgroup root /sys/fs/cgroup/cpu: the memory controller is not on this hierarchy",
		},
		{
			name: "--cgroup-root a v2 mount without memory", fixture: "v1", controllers: "hugetlb", root: "@UNIFIED@",
			wantErr: "the memory controller is not on this hierarchy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unified := fakeV2Mount(t, tt.controllers)
			mountinfo, self := fixture(t, tt.fixture, unified)
			root := strings.ReplaceAll(tt.root, "@UNIFIED@", unified)
			h, err := detect(root, mountinfo, self)
			if tt.wantErr != "" || tt.wantIs != nil {
				if err == nil {
					t.Fatalf("detect(%q) = %+v, want an error", root, h)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("detect(%q) error %v, want errors.Is %v", root, err, tt.wantIs)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("detect(%q) error %q, want it to contain %q", root, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("detect(%q): %v", root, err)
			}
			w := tt.want
			w.mount = strings.ReplaceAll(w.mount, "@UNIFIED@", unified)
			got := want{mount: h.Mount, version: h.Version, v1ID: h.V1ID, own: h.Own, parent: h.DefaultParent().Rel}
			if got != w {
				t.Errorf("detect(%q) = %+v, want %+v", root, got, w)
			}
			if p := h.DefaultParent().Path; p != filepath.Join(w.mount, w.parent) {
				t.Errorf("DefaultParent().Path = %q, want %q", p, filepath.Join(w.mount, w.parent))
			}
		})
	}
}

func TestDetectMissingFiles(t *testing.T) {
	mountinfo, self := fixture(t, "v1", fakeV2Mount(t, ""))
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := detect("", missing, self); err == nil || !strings.Contains(err.Error(), "reading mounts") {
		t.Errorf("missing mountinfo: error %v, want one about reading mounts", err)
	}
	if _, err := detect("", mountinfo, missing); err == nil || !strings.Contains(err.Error(), "reading own cgroups") {
		t.Errorf("missing /proc/self/cgroup: error %v, want one about reading own cgroups", err)
	}
}

// TestOwnRelativeToMountRoot covers setOwn on mounts whose root is not the
// hierarchy's root, as in containers.
func TestOwnRelativeToMountRoot(t *testing.T) {
	tests := []struct {
		name      string
		mountRoot string
		self      string
		want      string
	}{
		{"root mount", "/", "/a/b", "/a/b"},
		{"own is the mount root", "/docker/ctr", "/docker/ctr", "/"},
		{"below the mount root", "/docker/ctr", "/docker/ctr/sub", "/sub"},
		{"outside the mount root", "/docker/ctr", "/system.slice/other", "/"},
		{"sibling with a common prefix", "/docker/ctr", "/docker/ctr2/x", "/"},
		{"cgroup whose name starts with two dots", "/", "/..hidden/x", "/..hidden/x"},
		{"escaped mount root", `/with\040space`, "/with space/x", "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mi := filepath.Join(dir, "mountinfo")
			sc := filepath.Join(dir, "cgroup")
			line := "35 31 0:32 " + tt.mountRoot + " /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
			if err := os.WriteFile(mi, []byte(line), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(sc, []byte("7:memory:"+tt.self+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			h, err := detect("", mi, sc)
			if err != nil {
				t.Fatal(err)
			}
			if h.Own != tt.want || h.V1ID != 7 {
				t.Errorf("Own, V1ID = %q, %d; want %q, 7", h.Own, h.V1ID, tt.want)
			}
		})
	}
}

func TestDefaultParent(t *testing.T) {
	tests := []struct {
		h        Hierarchy
		wantRel  string
		wantPath string
	}{
		{Hierarchy{Mount: "/sys/fs/cgroup/memory", Version: 1, V1ID: 4, Own: "/process_api/abc"}, "/process_api/abc", "/sys/fs/cgroup/memory/process_api/abc"},
		{Hierarchy{Mount: "/sys/fs/cgroup/memory", Version: 1, V1ID: 4, Own: "/"}, "/", "/sys/fs/cgroup/memory"},
		{Hierarchy{Mount: "/sys/fs/cgroup", Version: 2, Own: "/user.slice/x.scope"}, "/", "/sys/fs/cgroup"},
	}
	for _, tt := range tests {
		got := tt.h.DefaultParent()
		if got.Rel != tt.wantRel || got.Path != tt.wantPath {
			t.Errorf("%+v.DefaultParent() = %+v, want {Rel:%s Path:%s}", tt.h, got, tt.wantRel, tt.wantPath)
		}
	}
}
