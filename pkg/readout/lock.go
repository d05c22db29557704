package readout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/pkg/loader"
)

// Locks of a pin path: every one is a flock, and every one is taken here.
//   - Lock: the pin path's lock, exclusive for commands that change what is
//     pinned there, shared for those that only read. A lock file in
//     LockDir, since the pin path does not exist before a load.
//   - lockWalk: tree walks, which all write the tree map from slot 0, one
//     at a time; readers that hold Lock shared walk in turn. A flock of the
//     pin path's directory, which exists while anything is loaded there.

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
	if err := os.MkdirAll(LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating lock directory: %w", err)
	}
	path := LockFile(pinPath)
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
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
			return func() { release(fd, pinPath, path) }, nil
		}
		unix.Close(fd) // unlinked while we waited: lock the file there now
	}
}

// flock takes the lock how on fd, waiting until ctx ends.
func flock(ctx context.Context, fd, how int) error {
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

// release drops the lock, first removing the lock file if the pin path
// holds no load: a lock file is left only for a load (or a load in
// progress, whose loader holds the lock exclusively meanwhile). Only an
// exclusive holder unlinks (see Lock): a shared holder tries to convert
// without waiting, which fails while anyone else holds the lock; the last
// holder to release then succeeds. (A failed conversion drops the lock, which
// release is about to do anyway.) A killed command leaves its lock file
// until the next command on that pin path releases it.
func release(fd int, pinPath, path string) {
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
		if _, err := loader.PinDir(pinPath).Record(); err != nil {
			_ = unix.Unlink(path)
		}
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

// lockWalk serializes tree walks at pinPath (see Locks above).
func lockWalk(pinPath string) (unlock func(), err error) {
	fd, err := unix.Open(pinPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("locking the tree map: %w", err)
	}
	// Blocking: a walk takes milliseconds, and polling would add up to its
	// period to every contended one.
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("locking the tree map: %w", err)
	}
	return func() { unix.Close(fd) }, nil
}
