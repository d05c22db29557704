//go:build man

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManPages (make unit runs it with -tags man): make man writes a page per visible command, from the
// commands themselves.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if r := cli(t, "man", dir); r.code != 0 {
		t.Fatalf("man: exit %d: %s", r.code, r.stderr)
	}
	for _, c := range newRootCmd().Commands() {
		page := filepath.Join(dir, "cgrstat-"+c.Name()+".1")
		b, err := os.ReadFile(page)
		if c.Hidden {
			if err == nil {
				t.Errorf("hidden command %s has a man page", c.Name())
			}
			continue
		}
		if err != nil || !strings.Contains(string(b), ".SH NAME") || !strings.Contains(string(b), c.Short) {
			t.Errorf("%s: %v, or not a man page of the command", page, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "cgrstat-serve.1"))
	if !strings.Contains(string(b), "web.listen-address") {
		t.Errorf("serve's page lacks its flags")
	}
}
