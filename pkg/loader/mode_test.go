package loader

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"auto", Auto, true},
		{"fentry", Fentry, true},
		{"kprobe", Kprobe, true},
		{"walk", Walk, true},
		{"", "", false},
		{"Walk", "", false},
		{"rstat", "", false},
		{" walk", "", false},
		{"walk\n", "", false},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "want auto, fentry, kprobe or walk") {
			t.Errorf("ParseMode(%q) error %q does not list the modes", tt.in, err)
		}
	}
}

func TestCandidates(t *testing.T) {
	if got := candidates(Auto); !reflect.DeepEqual(got, []Mode{Fentry, Kprobe, Walk}) {
		t.Errorf("candidates(auto) = %v, want fentry, kprobe, walk (best first)", got)
	}
	for _, m := range []Mode{Fentry, Kprobe, Walk} {
		if got := candidates(m); !reflect.DeepEqual(got, []Mode{m}) {
			t.Errorf("candidates(%s) = %v", m, got)
		}
	}
	for m, want := range map[Mode]bool{Fentry: true, Kprobe: true, Walk: false, Auto: false} {
		if got := m.UsesRstat(); got != want {
			t.Errorf("%s.UsesRstat() = %v, want %v", m, got, want)
		}
	}
}

func TestRefusal(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
		err  error
		want string
	}{
		{"fentry under lockdown", Fentry, fmt.Errorf("attaching flush_fentry: %w", unix.EPERM), "fentry refused by the kernel (EPERM; kernel lockdown?)"},
		{"kprobe EPERM is not lockdown's message", Kprobe, fmt.Errorf("x: %w", unix.EPERM), "kprobe: x: operation not permitted"},
		{"no kprobes", Kprobe, errNoKprobes, errNoKprobes.Error()},
		{"verifier", Walk, fmt.Errorf("loading collectors: %w", &ebpf.VerifierError{Log: []string{"0: R1=ctx", "invalid mem access 'scalar'", "", "processed 12 insns"}}),
			"walk program rejected by the verifier: invalid mem access 'scalar'"},
		{"verifier without a log", Fentry, &ebpf.VerifierError{}, "fentry program rejected by the verifier: no verifier log"},
		{"other", Walk, errors.New("boom"), "walk: boom"},
	}
	for _, tt := range tests {
		if got := refusal(tt.mode, tt.err); got != tt.want {
			t.Errorf("%s: refusal = %q, want %q", tt.name, got, tt.want)
		}
	}
}
