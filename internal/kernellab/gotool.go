package kernellab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Go runs the go tool in dir (the current directory if empty) with cgo off,
// since the guests have no libc and every binary in them must be static.
// It returns the standard output.
func Go(ctx context.Context, dir string, args ...string) (string, error) {
	return GoFor(ctx, "", dir, args...)
}

// GoFor is Go building for the guest architecture goarch (the host's if
// empty): GOARCH=arm64 cross-compiles the arm64 guests' binaries.
func GoFor(ctx context.Context, goarch, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+goarch)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
