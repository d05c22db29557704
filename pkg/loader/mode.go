package loader

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Mode is who drives the flush of each cgroup's pending readings into totals.
type Mode string

const (
	Auto   Mode = "auto"
	Fentry Mode = "fentry" // fentry on bpf_rstat_flush, called by rstat
	Kprobe Mode = "kprobe" // kprobe on bpf_rstat_flush, called by rstat
	Walk   Mode = "walk"   // the stat file's iterator walks the subtree itself
)

// ParseMode accepts the values of load --flush.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Fentry, Kprobe, Walk:
		return m, nil
	}
	return "", fmt.Errorf("unknown flush mode %q (want auto, fentry, kprobe or walk)", s)
}

// candidates lists the modes to try, best first.
func candidates(m Mode) []Mode {
	if m == Auto {
		return []Mode{Fentry, Kprobe, Walk}
	}
	return []Mode{m}
}

// UsesRstat reports whether collectors must mark updates in rstat.
func (m Mode) UsesRstat() bool { return m == Fentry || m == Kprobe }

// kprobePMU exists when the kernel can create kprobes through perf_event_open.
const kprobePMU = "/sys/bus/event_source/devices/kprobe/type"

// errNoKprobes is the refusal of kernels built without CONFIG_KPROBES.
var errNoKprobes = errors.New("kprobe on bpf_rstat_flush cannot be attached: this kernel has no kprobes (CONFIG_KPROBES off?)")

// probe refuses a mode before loading when the kernel plainly lacks it.
func probe(m Mode) error {
	if m == Kprobe {
		if _, err := os.Stat(kprobePMU); err != nil {
			return errNoKprobes
		}
	}
	return nil
}

// refusal explains in one line why the kernel refused mode.
func refusal(m Mode, err error) string {
	var ve *ebpf.VerifierError
	switch {
	case m == Fentry && errors.Is(err, unix.EPERM):
		return "fentry refused by the kernel (EPERM; kernel lockdown?)"
	case errors.Is(err, errNoKprobes):
		return err.Error()
	case errors.As(err, &ve):
		return fmt.Sprintf("%s program rejected by the verifier: %s", m, lastLine(ve.Log))
	}
	return fmt.Sprintf("%s: %v", m, err)
}

func lastLine(log []string) string {
	for i := len(log) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(log[i]); l != "" && !strings.HasPrefix(l, "processed ") {
			return l
		}
	}
	return "no verifier log"
}
