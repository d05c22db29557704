package cgroup

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const untouched = "untouched"

// fakeCgroup is a cgroup directory whose control files are regular files
// holding "untouched".
func fakeCgroup(t *testing.T, files ...string) Cgroup {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(untouched), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Cgroup{Rel: "/test/leaf", Path: dir}
}

// contents returns every file's content in c.
func contents(t *testing.T, c Cgroup) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(c.Path, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func TestSetLimits(t *testing.T) {
	v1Files := []string{"memory.limit_in_bytes"}
	v2Files := []string{"memory.max", "memory.high"}
	tests := []struct {
		name    string
		version int
		limits  Limits
		want    map[string]string
		wantErr string
	}{
		{"v1 limit", 1, Limits{Max: 5 << 20}, map[string]string{"memory.limit_in_bytes": "5242880"}, ""},
		{"v1 unlimited", 1, Limits{Max: -1}, map[string]string{"memory.limit_in_bytes": "-1"}, ""},
		{"v1 nothing set", 1, Limits{}, map[string]string{"memory.limit_in_bytes": untouched}, ""},
		{"v1 high refused", 1, Limits{Max: 1 << 20, High: 1 << 20}, map[string]string{"memory.limit_in_bytes": untouched}, "memory high needs cgroup v2"},
		{"v1 unlimited high refused", 1, Limits{High: -1}, map[string]string{"memory.limit_in_bytes": untouched}, "memory high needs cgroup v2"},
		{"v2 max and high", 2, Limits{Max: 8 << 20, High: 6 << 20}, map[string]string{"memory.max": "8388608", "memory.high": "6291456"}, ""},
		{"v2 unlimited", 2, Limits{Max: -1, High: -1}, map[string]string{"memory.max": "max", "memory.high": "max"}, ""},
		{"v2 max only", 2, Limits{Max: 4096}, map[string]string{"memory.max": "4096", "memory.high": untouched}, ""},
		{"v2 high only", 2, Limits{High: -1}, map[string]string{"memory.max": untouched, "memory.high": "max"}, ""},
		{"v2 nothing set", 2, Limits{}, map[string]string{"memory.max": untouched, "memory.high": untouched}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := v2Files
			if tt.version == 1 {
				files = v1Files
			}
			c := fakeCgroup(t, files...)
			h := &Hierarchy{Mount: filepath.Dir(c.Path), Version: tt.version}
			err := h.SetLimits(c, tt.limits)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("SetLimits(%+v): %v", tt.limits, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("SetLimits(%+v) error %v, want one containing %q", tt.limits, err, tt.wantErr)
			case err != nil && !strings.Contains(err.Error(), c.Rel):
				t.Errorf("error %q does not name the cgroup %s", err, c.Rel)
			}
			if got := contents(t, c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("after SetLimits(%+v) the files hold %v, want %v", tt.limits, got, tt.want)
			}
		})
	}
}

func TestWriteReadErrors(t *testing.T) {
	c := fakeCgroup(t, "memory.max")
	if err := c.Write("memory.max", "123\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Read("memory.max"); err != nil || got != "123" {
		t.Errorf("Read = %q, %v; want the trimmed 123", got, err)
	}
	missing := Cgroup{Rel: "/gone", Path: filepath.Join(t.TempDir(), "gone")}
	err := missing.Write("memory.max", "1")
	if err == nil || !strings.Contains(err.Error(), `cgroup /gone: writing "1" to memory.max`) {
		t.Errorf("Write in a missing cgroup: %v", err)
	}
	// The message names the file once, without the *PathError's long path.
	if err != nil && strings.Contains(err.Error(), missing.Path) {
		t.Errorf("Write error %q repeats the path", err)
	}
	if _, err := missing.Read("memory.max"); err == nil || !strings.Contains(err.Error(), "cgroup /gone: reading memory.max") {
		t.Errorf("Read in a missing cgroup: %v", err)
	}
}

func TestEnableMemory(t *testing.T) {
	tests := []struct {
		name        string
		version     int
		subtree     string
		wantChanged bool
		want        string
	}{
		{"v1 has it everywhere", 1, "cpu", false, "cpu"},
		{"v2 already on", 2, "cpu memory io", false, "cpu memory io"},
		{"v2 off", 2, "cpu io", true, "+memory"},
		{"v2 nothing on", 2, "", true, "+memory"},
		{"v2 similar name", 2, "memoryx", true, "+memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeCgroup(t)
			if err := os.WriteFile(filepath.Join(c.Path, "cgroup.subtree_control"), []byte(tt.subtree+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			h := &Hierarchy{Mount: filepath.Dir(c.Path), Version: tt.version}
			changed, err := h.EnableMemory(c)
			if err != nil || changed != tt.wantChanged {
				t.Fatalf("EnableMemory = %v, %v; want %v, nil", changed, err, tt.wantChanged)
			}
			got, err := c.Read("cgroup.subtree_control")
			if err != nil || got != tt.want {
				t.Errorf("cgroup.subtree_control = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestProcs(t *testing.T) {
	c := fakeCgroup(t)
	if err := os.WriteFile(filepath.Join(c.Path, "cgroup.procs"), []byte("12\n345\n\n7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := c.Procs()
	if err != nil || !reflect.DeepEqual(got, []int{12, 345, 7}) {
		t.Errorf("Procs = %v, %v; want [12 345 7]", got, err)
	}
}
