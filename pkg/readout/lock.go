package readout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/pkg/loader"
)

// A pin path has two locks, both lock files in LockDir taken the one way
// (lockFile), here:
//   - Lock: the pin path's lock, exclusive for commands that change what is
//     pinned there, shared for those that only read. A file outside the
//     pin path, since the pin path does not exist before a load.
//   - lockWalk: tree walks, which all write the tree map from slot 0, one
//     at a time; readers that hold Lock shared walk in turn.

// LockDir holds one lock file per pin path: outside bpffs, which holds no
// regular files. A lock file exists while its pin path holds a load or is
// being loaded (or for as long as a command on it runs): the last command
// to release it removes it when no load is left (see release).
var LockDir = "/run/cgrstat"

// Lock takes the lock of pinPath: exclusive for commands that change what is
// pinned there (load, unload, pin, unpin, hierarchy, check), shared for those
// that only read (read, status, stress's flushes). It waits until ctx ends.
// The kernel drops the lock when the process dies, kill -9 included.
//
// Why removing lock files is safe: a lock file is only ever unlinked by a
// process that holds it exclusively (release), so no one else holds it
// then. A process that opened the file before the unlink and waits for it
// gets, once the unlinker closes, a lock on a file that no longer has the
// name: that lock excludes no one, so Lock checks after each flock that
// the name still leads to the file it locked (same device and inode) and
// otherwise starts again with the file now at the name, which it creates if
// need be. Every holder that Lock returns to therefore holds the file that
// the name leads to, and two of them conflict as flock says.
func Lock(ctx context.Context, pinPath string, exclusive bool) (unlock func(), err error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	// A lock file is left only for a load (or a load in progress, whose
	// loader holds the lock exclusively meanwhile).
	noLoad := func() bool {
		_, err := loader.PinDir(pinPath).Record()
		return err != nil
	}
	return lockFile(ctx, LockFile(pinPath), how, noLoad)
}

// lockWalk serializes tree walks at pinPath (see above). Its file exists
// only while a walk runs or waits: each holder removes it when it can.
func lockWalk(pinPath string) (unlock func(), err error) {
	return lockFile(context.Background(), walkLockFile(pinPath), unix.LOCK_EX, func() bool { return true })
}

// lockFile takes the lock how on the file at path (see Lock for why that
// is safe while files are removed); unlocking removes the file when remove
// says so and no one else holds it.
func lockFile(ctx context.Context, path string, how int, remove func() bool) (unlock func(), err error) {
	if err := os.MkdirAll(LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating lock directory: %w", err)
	}
	for {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening lock file %s: %w", path, err)
		}
		if err := flock(ctx, fd, how); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if named(fd, path) {
			return func() { release(fd, path, remove) }, nil
		}
		unix.Close(fd) // unlinked while we waited: lock the file there now
	}
}

// flock takes the lock how on fd, waiting until ctx ends. A context that
// never ends waits in the kernel: a contended walk lock is then taken as
// soon as it is free, not at the next poll.
func flock(ctx context.Context, fd, how int) error {
	if ctx.Done() == nil {
		for {
			err := unix.Flock(fd, how)
			if !errors.Is(err, unix.EINTR) {
				return err
			}
		}
	}
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// named reports whether path still names the file open at fd.
func named(fd int, path string) bool {
	var open, now unix.Stat_t
	return unix.Fstat(fd, &open) == nil && unix.Stat(path, &now) == nil && open.Dev == now.Dev && open.Ino == now.Ino
}

// release drops the lock, first removing the lock file if remove says so.
// Only an exclusive holder unlinks (see Lock): a shared holder tries to
// convert without waiting, which fails while anyone else holds the lock;
// the last holder to release then succeeds. (A failed conversion drops the
// lock, which release is about to do anyway.) A killed command leaves its
// lock file until the next command on that pin path releases it.
func release(fd int, path string, remove func() bool) {
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil && remove() {
		_ = unix.Unlink(path)
	}
	unix.Close(fd)
}

// LockFile names the lock of pinPath by a hash of its clean absolute path,
// with the last element for whoever looks at the directory.
func LockFile(pinPath string) string {
	abs, err := filepath.Abs(pinPath)
	if err != nil {
		abs = filepath.Clean(pinPath)
	}
	sum := sha256.Sum256([]byte(abs))
	base := filepath.Base(abs)
	if len(base) > 64 {
		base = base[:64]
	}
	return filepath.Join(LockDir, base+"-"+hex.EncodeToString(sum[:8])+".lock")
}

// walkLockFile names the walk lock of pinPath, beside its lock file.
func walkLockFile(pinPath string) string {
	return strings.TrimSuffix(LockFile(pinPath), ".lock") + ".walk.lock"
}
