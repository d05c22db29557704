package readout

import (
	"bytes"
	"encoding/binary"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/events"
)

// headerSize is an event without its stack: what the ring holds when the
// reader did not ask for stacks.
const headerSize = int(unsafe.Offsetof(bpf.CgrstatTraceEvent{}.Stack))

// decode reads one event as the BPF side wrote it (struct trace_event).
func decode(raw []byte) (events.Event, bool) {
	var e bpf.CgrstatTraceEvent
	if len(raw) < headerSize {
		return events.Event{}, false
	}
	buf := make([]byte, unsafe.Sizeof(e))
	copy(buf, raw)
	if binary.Read(bytes.NewReader(buf), binary.NativeEndian, &e) != nil {
		return events.Event{}, false
	}
	ev := events.Event{
		Time:      wallClock(e.EndNs),
		Duration:  time.Duration(e.DurationNs),
		PID:       int(e.Pid),
		TID:       int(e.Tid),
		Comm:      comm(e.Comm),
		Cgroup:    e.CgroupId,
		Target:    e.TargetId,
		Cause:     causeName(e.Cause),
		Reclaimed: e.Reclaimed,
		CPU:       int(e.Cpu),
	}
	if n := int(e.StackBytes) / 8; n > 0 && len(raw) >= headerSize+n*8 {
		ev.Stack = append([]uint64(nil), e.Stack[:min(n, len(e.Stack))]...)
	}
	return ev, true
}

func causeName(c uint32) string {
	if int(c) < len(causes) {
		return causes[c]
	}
	return "unknown"
}

// comm is the task name up to its NUL: raw bytes, escaped by whoever prints.
func comm(c [16]int8) string {
	b := make([]byte, 0, len(c))
	for _, ch := range c {
		if ch == 0 {
			break
		}
		b = append(b, byte(ch))
	}
	return string(b)
}

// wallClock converts a CLOCK_MONOTONIC time (bpf_ktime_get_ns) to the wall
// clock, by the two clocks' offset now.
func wallClock(mono uint64) time.Time {
	var ts unix.Timespec
	now := time.Now()
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return now
	}
	return now.Add(-time.Duration(uint64(ts.Nano()) - mono))
}
