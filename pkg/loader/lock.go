package loader

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
)

// LockDir holds one lock file per pin path. It is outside bpffs, which
// holds no regular files, and the lock files are never removed: removing
// one while another process waits on it would let two holders in.
var LockDir = "/run/cgrstat"

// Lock takes the lock of pinPath: exclusive for commands that change what is
// pinned there (load, unload, pin, unpin, hierarchy, check), shared for those
// that only read (read, status, stress's flushes). It waits until ctx ends.
// The kernel drops the lock when the process dies, kill -9 included.
func Lock(ctx context.Context, pinPath string, exclusive bool) (unlock func(), err error) {
	if err := os.MkdirAll(LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating lock directory: %w", err)
	}
	path := LockFile(pinPath)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file %s: %w", path, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			unix.Close(fd)
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
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
