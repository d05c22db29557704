package format

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/pkg/events"
)

func sampleEvent() Event {
	return Event{
		Event: events.Event{
			Time: time.Date(2026, 12, 3, 11, 0, 0, 123456000, time.UTC), Duration: 12345678, PID: 10, TID: 11,
			Comm: "evil\x1b[2J", Cgroup: 7, Target: 5, Cause: "max", Reclaimed: 32, CPU: 1,
		},
		CgroupPath: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice",
		TargetPath: "/kubepods.slice",
		Stack:      []string{"try_to_free_mem_cgroup_pages+0x21d"},
	}
}

// TestEventText: one line, names escaped, the target when it is another
// cgroup, the tid when another thread, the stack indented below.
func TestEventText(t *testing.T) {
	var b bytes.Buffer
	if err := EventText(&b, sampleEvent()); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{" max ", " 12ms ", "32 pages", "pid 10 tid 11", `evil\x1b[2J`, "pod0a1b2c3d",
		"target /kubepods.slice", "cpu 1", "\n    try_to_free_mem_cgroup_pages+0x21d\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("EventText = %q, lacks %q", got, want)
		}
	}
	if strings.ContainsRune(got, 0x1b) {
		t.Errorf("EventText printed a raw escape: %q", got)
	}
	e := sampleEvent()
	e.Target, e.TargetPath, e.CgroupPath, e.Stack = e.Cgroup, "", "", nil
	b.Reset()
	EventText(&b, e)
	if strings.Contains(b.String(), "target") || !strings.Contains(b.String(), "(removed, id 7)") {
		t.Errorf("own cgroup as target, removed cgroup: %q", b.String())
	}
	e.CgroupPath = "/a\x1b[2Jb"
	b.Reset()
	EventText(&b, e)
	if !strings.Contains(b.String(), `cgroup /a\x1b[2Jb`) {
		t.Errorf("a cgroup named with an escape: %q", b.String())
	}
}

// TestEventJSON: the fields trace --json promises, the identity the path
// tells, null for a target that is not there.
func TestEventJSON(t *testing.T) {
	var b bytes.Buffer
	if err := EventJSON(&b, sampleEvent()); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || !strings.HasSuffix(b.String(), "}\n") || strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("EventJSON = %q: %v", b.String(), err)
	}
	for _, k := range []string{"time", "pid", "tid", "comm", "cgroup", "target", "cause", "duration_ns", "reclaimed_pages", "cpu", "stack", "identity"} {
		if _, ok := m[k]; !ok {
			t.Errorf("EventJSON lacks %q: %s", k, b.String())
		}
	}
	if m["time"] != "2026-12-03T11:00:00.123456Z" || m["duration_ns"] != 12345678.0 || m["comm"] != "evil\x1b[2J" {
		t.Errorf("EventJSON = %s", b.String())
	}
	e := sampleEvent()
	e.Target, e.TargetPath, e.Stack = 0, "", nil
	b.Reset()
	EventJSON(&b, e)
	if !strings.Contains(b.String(), `"target":null`) || strings.Contains(b.String(), `"stack"`) {
		t.Errorf("direct reclaim without --stack: %s", b.String())
	}
}
