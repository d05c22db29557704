package format

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cgrstat/cgrstat/pkg/check"
	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// CheckJSON writes the whole report.
func CheckJSON(w io.Writer, rep *check.Report) error {
	return writeJSON(w, rep)
}

// CheckText writes the tree with each cgroup's numbers and how many of
// its invariants hold, then each failed invariant with its detail, then
// one summary line. (Every invariant, passed or not, is in CheckJSON.)
func CheckText(w io.Writer, rep *check.Report) error {
	byCgroup := map[string][]check.Invariant{}
	for _, inv := range rep.Invariants {
		byCgroup[inv.Cgroup] = append(byCgroup[inv.Cgroup], inv)
	}
	fmt.Fprintf(w, "tree under %s\n", escape.String(rep.Parent.Path))
	t := newTable("CGROUP", "RECLAIMS", "DELAY", "RECLAIMED", "P99", "MAX", "INVARIANTS")
	t.append(checkRow("(parent)", &rep.Parent, nil)...)
	for _, n := range rep.Nodes {
		depth := strings.Count(n.Rel, "/")
		name := strings.Repeat("  ", depth) + n.Rel[strings.LastIndex(n.Rel, "/")+1:]
		t.append(checkRow(name, &n.Stat, byCgroup[n.Rel])...)
	}
	if err := t.write(w); err != nil {
		return err
	}
	for _, inv := range rep.Invariants {
		if !inv.Pass {
			fmt.Fprintf(w, "FAIL %s: %s (%s)\n", escape.String(inv.Cgroup), inv.Name, escape.String(inv.Detail))
		}
	}
	_, err := fmt.Fprintln(w, rep.Summary())
	return err
}

func checkRow(name string, s *reclaim.Stat, invs []check.Invariant) []string {
	p99, longest := "-", "-"
	if s.Count > 0 {
		p99, longest = Latency(s.Quantiles()[2]), Latency(s.MaxNS)
	}
	return []string{name, strconv.FormatUint(s.Count, 10), Latency(s.DelayNS), Pages(s.Reclaimed), p99, longest, verdict(invs)}
}

// verdict says how many of a cgroup's invariants hold.
func verdict(invs []check.Invariant) string {
	if len(invs) == 0 {
		return ""
	}
	held := 0
	for _, inv := range invs {
		if inv.Pass {
			held++
		}
	}
	v := "PASS"
	if held < len(invs) {
		v = "FAIL"
	}
	return fmt.Sprintf("%s %d of %d", v, held, len(invs))
}
