package format

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/identity"
)

// Event is a reclaim event as trace prints it: its cgroups named by path
// ("" for a cgroup the hierarchy no longer has) and its stack by symbol.
type Event struct {
	events.Event
	CgroupPath string
	TargetPath string
	Stack      []string // symbolized; nil without --stack
}

// eventJSON is one line of trace --json.
type eventJSON struct {
	Time       string             `json:"time"`
	PID        int                `json:"pid"`
	TID        int                `json:"tid"`
	Comm       string             `json:"comm"`
	Cgroup     *string            `json:"cgroup"` // null: removed before it was named
	CgroupID   uint64             `json:"cgroup_id"`
	Identity   *identity.Identity `json:"identity,omitempty"`
	Target     *string            `json:"target"` // null: global direct reclaim, or removed
	TargetID   uint64             `json:"target_id"`
	Cause      string             `json:"cause"`
	DurationNS int64              `json:"duration_ns"`
	Reclaimed  uint64             `json:"reclaimed_pages"`
	CPU        int                `json:"cpu"`
	Stack      []string           `json:"stack,omitempty"`
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// EventJSON writes e as one line of JSON. The identity is what the
// cgroup's path tells (a pod, a container, a unit), as read --json has it.
func EventJSON(w io.Writer, e Event) error {
	j := eventJSON{
		Time: e.Time.UTC().Format(time.RFC3339Nano), PID: e.PID, TID: e.TID, Comm: e.Comm,
		Cgroup: orNull(e.CgroupPath), CgroupID: e.Cgroup, Target: orNull(e.TargetPath), TargetID: e.Target,
		Cause: e.Cause, DurationNS: int64(e.Duration), Reclaimed: e.Reclaimed, CPU: e.CPU, Stack: e.Stack,
	}
	if id, ok := identity.Parse(e.CgroupPath); ok {
		j.Identity = &id
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// EventText writes e as one line for people, then its stack one frame a
// line, indented. The cgroup paths and the command name are escaped: any
// user names them.
func EventText(w io.Writer, e Event) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-9s %9s %s pid %d", e.Time.Local().Format("15:04:05.000000"), e.Cause,
		Latency(uint64(e.Duration)), Pages(e.Reclaimed), e.PID)
	if e.TID != e.PID {
		fmt.Fprintf(&b, " tid %d", e.TID)
	}
	fmt.Fprintf(&b, " %s cpu %d cgroup %s", escape.String(e.Comm), e.CPU, pathOrID(e.CgroupPath, e.Cgroup))
	if e.Target != 0 && e.Target != e.Cgroup {
		fmt.Fprintf(&b, " target %s", pathOrID(e.TargetPath, e.Target))
	}
	b.WriteByte('\n')
	for _, frame := range e.Stack {
		fmt.Fprintf(&b, "    %s\n", escape.String(frame))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func pathOrID(path string, id uint64) string {
	if path == "" {
		return fmt.Sprintf("(removed, id %d)", id)
	}
	return escape.String(path)
}
