package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

// goBuild builds the module's package at rel (a directory such as
// "cmd/cgrstat") into dir/name, statically: the lab's guests have no libc.
func goBuild(ctx context.Context, dir, rel, name string) (string, error) {
	modDir, err := kernellab.Go(ctx, "", "list", "-m", "-f", "{{.Dir}}")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	if _, err := kernellab.Go(ctx, strings.TrimSpace(modDir), "build", "-o", bin, "./"+rel); err != nil {
		return "", fmt.Errorf("building %s: %w", rel, err)
	}
	return bin, nil
}
