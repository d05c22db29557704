package format

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/cgrstat/cgrstat/pkg/spec"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

// StressJSON writes {"stress":[...]}.
func StressJSON(w io.Writer, results []stress.Result) error {
	return writeJSON(w, struct {
		Stress []stress.Result `json:"stress"`
	}{results})
}

// StressTable writes one row per stressed cgroup.
func StressTable(w io.Writer, results []stress.Result) error {
	t := newTable("CGROUP", "SIZE", "ROUNDS", "RECLAIM REQUESTS", "FELL SHORT", "TIME")
	for _, r := range results {
		t.append(r.Cgroup, spec.Size(r.Size).String(), strconv.Itoa(r.Rounds),
			strconv.Itoa(r.Report.Triggers), strconv.Itoa(r.Report.Refused), Latency(uint64(r.Time)))
	}
	return t.write(w)
}

// ChildJSON writes a stress child's report for its parent.
func ChildJSON(w io.Writer, rep stress.ChildReport) error {
	return json.NewEncoder(w).Encode(rep)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
