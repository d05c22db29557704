package readout

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLockExcludesWhileFilesComeAndGo: lock files are removed by the last
// holder when no load is there (issue 17's sixth defect), and the lock
// still excludes as flock says while files are unlinked and made again
// under waiting holders: never two exclusive holders, never a shared one
// beside an exclusive one. No lock file is left at the end.
func TestLockExcludesWhileFilesComeAndGo(t *testing.T) {
	old := LockDir
	LockDir = t.TempDir()
	t.Cleanup(func() { LockDir = old })
	pinPath := filepath.Join(t.TempDir(), "nothing-loaded")
	var exclusive, shared, rounds atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				ex := (g+i)%3 == 0
				unlock, err := Lock(context.Background(), pinPath, ex)
				if err != nil {
					t.Error(err)
					return
				}
				if ex {
					if exclusive.Add(1) != 1 || shared.Load() != 0 {
						t.Error("an exclusive holder beside another holder")
					}
					time.Sleep(100 * time.Microsecond)
					exclusive.Add(-1)
				} else {
					shared.Add(1)
					if exclusive.Load() != 0 {
						t.Error("a shared holder beside an exclusive one")
					}
					time.Sleep(100 * time.Microsecond)
					shared.Add(-1)
				}
				unlock()
				rounds.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d rounds", rounds.Load())
	if _, err := os.Lstat(LockFile(pinPath)); err == nil {
		t.Errorf("lock file %s left for a pin path that holds no load", LockFile(pinPath))
	}
}

// TestWalkLockExcludesAndLeavesNothing: walks are one at a time, through
// a lock file of the same kind as the pin path's, which the last walk
// removes; it never excludes the pin path's own lock.
func TestWalkLockExcludesAndLeavesNothing(t *testing.T) {
	old := LockDir
	LockDir = t.TempDir()
	t.Cleanup(func() { LockDir = old })
	pinPath := filepath.Join(t.TempDir(), "loaded")
	shared, err := Lock(context.Background(), pinPath, false)
	if err != nil {
		t.Fatal(err)
	}
	var walking, walks atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				unlock, err := lockWalk(pinPath)
				if err != nil {
					t.Error(err)
					return
				}
				if walking.Add(1) != 1 {
					t.Error("two walks at once")
				}
				time.Sleep(50 * time.Microsecond)
				walking.Add(-1)
				walks.Add(1)
				unlock()
			}
		}()
	}
	wg.Wait()
	shared()
	if walks.Load() != 200 {
		t.Errorf("%d walks, want 200", walks.Load())
	}
	if left, _ := os.ReadDir(LockDir); len(left) != 0 {
		t.Errorf("lock files left: %v", left)
	}
}
