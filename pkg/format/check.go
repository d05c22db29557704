package format

import (
	"fmt"
	"io"
	"strings"

	"github.com/cgrstat/cgrstat/pkg/check"
)

// CheckJSON writes the whole report.
func CheckJSON(w io.Writer, rep *check.Report) error {
	return writeJSON(w, rep)
}

// CheckText writes the tree with each cgroup's numbers and the verdict of
// each invariant, then one summary line.
func CheckText(w io.Writer, rep *check.Report) error {
	byCgroup := map[string][]check.Invariant{}
	for _, inv := range rep.Invariants {
		byCgroup[inv.Cgroup] = append(byCgroup[inv.Cgroup], inv)
	}
	fmt.Fprintf(w, "tree under %s\n", rep.Parent.Path)
	fmt.Fprintf(w, "%-32s %8s %12s %14s  %s\n", "CGROUP", "RECLAIMS", "DELAY", "RECLAIMED", "INVARIANTS")
	fmt.Fprintf(w, "%-32s %8d %12s %14s\n", "(parent)", rep.Parent.Count, Duration(rep.Parent.DelayNS), Pages(rep.Parent.Reclaimed))
	for _, n := range rep.Nodes {
		depth := strings.Count(n.Rel, "/")
		name := strings.Repeat("  ", depth) + n.Rel[strings.LastIndex(n.Rel, "/")+1:]
		fmt.Fprintf(w, "%-32s %8d %12s %14s  %s\n", name, n.Stat.Count, Duration(n.Stat.DelayNS), Pages(n.Stat.Reclaimed), verdicts(byCgroup[n.Rel]))
	}
	_, err := fmt.Fprintln(w, rep.Summary())
	return err
}

func verdicts(invs []check.Invariant) string {
	var parts []string
	for _, inv := range invs {
		v := "PASS"
		if !inv.Pass {
			v = "FAIL"
		}
		s := fmt.Sprintf("%s %s", v, inv.Name)
		if inv.Detail != "" {
			s += " (" + strings.TrimSuffix(inv.Detail, "; ") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
