package cgroup

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRelative(t *testing.T) {
	h := &Hierarchy{Mount: "/sys/fs/cgroup/memory", Version: 1}
	tests := []struct {
		arg     string
		want    string
		wantErr string // substring
	}{
		{arg: "test/a", want: "/test/a"},
		{arg: "/test/a", want: "/test/a"},
		{arg: "test/a/", want: "/test/a"},
		{arg: "test//a/./", want: "/test/a"},
		{arg: "/sys/fs/cgroup/memory/test/a", want: "/test/a"},
		{arg: "/sys/fs/cgroup/memory/test/a/", want: "/test/a"},
		{arg: "/sys/fs/cgroup/memory", want: "/"},
		{arg: "/sys/fs/cgroup/memory/", want: "/"},
		{arg: "/", want: "/"},
		{arg: ".", want: "/"},
		{arg: "a/../b", want: "/b"},
		{arg: "a/b/../../c", want: "/c"},
		{arg: "a/..", want: "/"},
		{arg: "..hidden", want: "/..hidden"},
		{arg: "../x", wantErr: "escapes the cgroup root /sys/fs/cgroup/memory"},
		{arg: "..", wantErr: "escapes the cgroup root"},
		{arg: "/..", wantErr: "escapes the cgroup root"},
		{arg: "a/../../x", wantErr: "escapes the cgroup root"},
		{arg: "a/../b/../../x", wantErr: "escapes the cgroup root"},
		{arg: "/sys/fs/cgroup/memory/../cpu", wantErr: "escapes the cgroup root"},
		{arg: "/sys/fs/cgroup/cpu/test", wantErr: "outside the memory hierarchy at /sys/fs/cgroup/memory"},
		{arg: "/sys/fs/cgroup/memoryx/test", wantErr: "outside the memory hierarchy"},
		{arg: "/sys/fs/cgroup", wantErr: "outside the memory hierarchy"},
		{arg: "/sys/fs/cgroup/", wantErr: "outside the memory hierarchy"},
		{arg: "", wantErr: "empty cgroup path"},
		{arg: "test\x00a", wantErr: "NUL byte"},
		{arg: "\x00", wantErr: "NUL byte"},
	}
	for _, tt := range tests {
		got, err := h.Relative(tt.arg)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Relative(%q) = %q, %v; want an error containing %q", tt.arg, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Relative(%q) = %q, %v; want %q", tt.arg, got, err, tt.want)
		}
	}
}

// TestRelativeV2 checks that on v2, where the mount is /sys/fs/cgroup
// itself, everything below it is inside.
func TestRelativeV2(t *testing.T) {
	h := &Hierarchy{Mount: "/sys/fs/cgroup", Version: 2}
	for arg, want := range map[string]string{
		"/sys/fs/cgroup":              "/",
		"/sys/fs/cgroup/test/a":       "/test/a",
		"/sys/fs/cgroup/memory/x":     "/memory/x",
		"/test/a":                     "/test/a",
		"system.slice/../user.slice/": "/user.slice",
	} {
		if got, err := h.Relative(arg); err != nil || got != want {
			t.Errorf("Relative(%q) = %q, %v; want %q", arg, got, err, want)
		}
	}
	if got, err := h.Relative("/sys/fs/cgroupx/a"); err == nil {
		t.Errorf("Relative(/sys/fs/cgroupx/a) = %q, want an error", got)
	}
}

// fakeHierarchy is a hierarchy mounted at a temporary directory with the
// directories dirs and the regular files files below it.
func fakeHierarchy(t *testing.T, version int, dirs, files []string) *Hierarchy {
	t.Helper()
	mount := t.TempDir()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(mount, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(mount, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &Hierarchy{Mount: mount, Version: version, Own: "/"}
}

func TestResolve(t *testing.T) {
	h := fakeHierarchy(t, 2, []string{"test/a"}, []string{"test/memory.max"})
	tests := []struct {
		arg     string
		want    string // Rel
		wantErr string
	}{
		{arg: "test/a", want: "/test/a"},
		{arg: "/test/a", want: "/test/a"},
		{arg: h.Mount + "/test/a", want: "/test/a"},
		{arg: h.Mount, want: "/"},
		{arg: "test/x/../a", want: "/test/a"},
		{arg: "test/missing", wantErr: "cgroup test/missing: no such cgroup under " + h.Mount},
		{arg: "test/memory.max", wantErr: "cgroup test/memory.max: not a cgroup directory"},
		{arg: "../x", wantErr: "escapes the cgroup root"},
		{arg: "test/a/../../../x", wantErr: "escapes the cgroup root"},
		{arg: "", wantErr: "empty cgroup path"},
		{arg: "test\x00a", wantErr: "NUL byte"},
	}
	for _, tt := range tests {
		got, err := h.Resolve(tt.arg)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Resolve(%q) = %+v, %v; want an error containing %q", tt.arg, got, err, tt.wantErr)
			}
			if got != (Cgroup{}) {
				t.Errorf("Resolve(%q) returned %+v with its error, want the zero Cgroup", tt.arg, got)
			}
			continue
		}
		want := Cgroup{Rel: tt.want, Path: filepath.Join(h.Mount, tt.want)}
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v", tt.arg, got, err, want)
		}
	}
}

func TestCgroupChildAndWalk(t *testing.T) {
	h := fakeHierarchy(t, 2, []string{"top/b/b1", "top/a/a2", "top/a/a1"}, []string{"top/cgroup.procs", "top/a/memory.max"})
	top := h.Cgroup("top")
	if want := (Cgroup{Rel: "/top", Path: filepath.Join(h.Mount, "top")}); top != want {
		t.Fatalf("Cgroup(top) = %+v, want %+v", top, want)
	}
	if c := top.Child("a"); c.Rel != "/top/a" || c.Path != filepath.Join(h.Mount, "top/a") {
		t.Errorf("Child(a) = %+v", c)
	}
	var got []string
	if err := Walk(top, func(c Cgroup) error { got = append(got, c.Rel); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"/top", "/top/a", "/top/a/a1", "/top/a/a2", "/top/b", "/top/b/b1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Walk = %v, want %v (parents first, files skipped)", got, want)
	}
	if !top.Exists() || top.Child("nope").Exists() || h.Cgroup("top/cgroup.procs").Exists() {
		t.Error("Exists: want true only for an existing directory")
	}
}
