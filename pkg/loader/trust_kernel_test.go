package loader_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// TestKernelUnloadAfterKilledLoad: what a load killed before it pinned its
// record leaves (empty directories) goes at the next unload when the killed
// process's note says the load made them: the pin path and its ancestors
// up to the outermost one it made. Without a note an empty directory may
// be the user's: it stays (issue 17's second defect).
func TestKernelUnloadAfterKilledLoad(t *testing.T) {
	testenv.Root(t)
	old := cgroup.IntentDir
	cgroup.IntentDir = t.TempDir()
	t.Cleanup(func() { cgroup.IntentDir = old })
	// A process that does not run: pids stop below 4194304 (PID_MAX_LIMIT).
	const dead = "4194303-1"
	note := func(lines string) string {
		path := filepath.Join(cgroup.IntentDir, dead+".pinpath")
		if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	mkdir := func(path string) {
		if err := os.MkdirAll(path, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// bpffs, as load would mount it (a guest may run this test first).
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/bpf", &st) != nil || st.Type != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
			testenv.Skip(t, "no bpffs at /sys/fs/bpf: %v", err)
		}
	}

	made := testenv.PinPath(t)
	pinPath := filepath.Join(made, "a", "b")
	mkdir(filepath.Join(pinPath, "maps"))
	n := note(pinPath + "\n" + made)
	if _, err := loader.Unload(pinPath); !errors.Is(err, loader.ErrNotLoaded) {
		t.Fatalf("Unload after a killed load: %v, want ErrNotLoaded", err)
	}
	if _, err := os.Lstat(made); err == nil {
		t.Errorf("Unload left %s, which the killed load made", made)
	}
	if _, err := os.Lstat(n); err == nil {
		t.Errorf("Unload left the note %s", n)
	}

	mine := made + "-mine"
	testenv.CleanupPinPath(t, mine)
	mkdir(filepath.Join(mine, "maps"))
	if _, err := loader.Unload(mine); !errors.Is(err, loader.ErrNotLoaded) {
		t.Fatalf("Unload of empty directories: %v, want ErrNotLoaded", err)
	}
	if _, err := os.Lstat(filepath.Join(mine, "maps")); err != nil {
		t.Errorf("Unload removed an empty directory no note names: %v", err)
	}
	note(mine + "\n") // a load into the user's directory, killed
	if _, err := loader.Unload(mine); !errors.Is(err, loader.ErrNotLoaded) {
		t.Fatalf("Unload after a killed load into the user's directory: %v, want ErrNotLoaded", err)
	}
	if entries, err := os.ReadDir(mine); err != nil || len(entries) != 0 {
		t.Errorf("after Unload, the user's directory: %v %v; want it kept, empty", entries, err)
	}
}
