package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// goBuild builds the module's package at rel (a directory such as
// "cmd/cgrstat") into dir/name, statically: the lab's guests have no libc.
func goBuild(ctx context.Context, dir, rel, name string) (string, error) {
	modDir, err := goOut(ctx, "", "list", "-m", "-f", "{{.Dir}}")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	if _, err := goOut(ctx, strings.TrimSpace(modDir), "build", "-o", bin, "./"+rel); err != nil {
		return "", fmt.Errorf("building %s: %w", rel, err)
	}
	return bin, nil
}

func goOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
