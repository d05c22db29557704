package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// IntentDir holds notes of what a process is about to make in more than one
// step (a cgroup and its mark, a pin path and its load): a kill -9 between
// the steps would otherwise leave something nobody can prove is cgrstat's.
// A note is named by its process (Self) and kind, and removed once the
// thing made proves itself; a note whose process is dead tells recovery what
// it may remove. /run is emptied at boot, as cgroups and bpffs are.
var IntentDir = "/run/cgrstat/intents"

// Intend writes a note of kind saying that this process is about to make
// what lines names, and returns the function that removes the note.
func Intend(kind string, lines ...string) (done func(), err error) {
	if err := os.MkdirAll(IntentDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", IntentDir, err)
	}
	// Written whole, then renamed: a kill in the middle of the write left
	// an empty note that no recovery could read or drop.
	note := filepath.Join(IntentDir, string(Self())+"."+kind)
	tmp := note + ".tmp" // not a note: InterruptedNotes reads *.kind
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("writing %s: %w", note, err)
	}
	if err := os.Rename(tmp, note); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("writing %s: %w", note, err)
	}
	return func() { os.Remove(note) }, nil
}

// Interrupted is a note whose process died before it removed it.
type Interrupted struct {
	Lines []string
	note  string
}

// Drop removes the note, once what it names is dealt with.
func (i Interrupted) Drop() { os.Remove(i.note) }

// InterruptedNotes returns the notes of kind whose processes are dead.
func InterruptedNotes(kind string) ([]Interrupted, error) {
	notes, err := filepath.Glob(filepath.Join(IntentDir, "*."+kind))
	if err != nil {
		return nil, err
	}
	// A note killed half-written (before its rename) proves nothing.
	if tmps, err := filepath.Glob(filepath.Join(IntentDir, "*."+kind+".tmp")); err == nil {
		for _, tmp := range tmps {
			if Owner(strings.TrimSuffix(filepath.Base(tmp), "."+kind+".tmp")).Dead() {
				os.Remove(tmp)
			}
		}
	}
	var out []Interrupted
	for _, note := range notes {
		owner := Owner(strings.TrimSuffix(filepath.Base(note), "."+kind))
		b, err := os.ReadFile(note)
		if err != nil || !owner.Dead() {
			continue
		}
		out = append(out, Interrupted{Lines: strings.Split(string(b), "\n"), note: note})
	}
	return out, nil
}
