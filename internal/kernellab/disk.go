package kernellab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// DefaultDiskMiB is the scratch disk's size. The file system is sparse on
// the host; the guests' writes go to QEMU's temporary overlay.
const DefaultDiskMiB = 1024

// MakeDisk writes an ext4 image to dst for the guests' scratch files.
// mkfs.ext4 -d (e2fsprogs) fills it without root or a loop device; its tmp
// directory is sticky and world-writable, as a TMPDIR should be.
func MakeDisk(ctx context.Context, dst string, sizeMiB int) error {
	root, err := os.MkdirTemp("", "kernellab-disk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o755); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "scratch", "-d", root, dst, strconv.Itoa(sizeMiB)+"M")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mkfs.ext4 (install e2fsprogs): %w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
