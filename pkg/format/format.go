// Package format prints reclaim statistics as a table for people or as
// JSON for scripts.
package format

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// JSON writes {"cgroups":[...]} with one cgroup per line: readable, and
// several times faster than indenting thousands of objects. An empty list
// is [] rather than null, so that scripts can index it without a check.
func JSON(w io.Writer, stats []reclaim.Stat) error {
	return ReadJSON(w, stats, ReadNotes{})
}

// ReadNotes is what a read has to say beside the numbers.
type ReadNotes struct {
	// Lost is set when the BPF side could not record everything: the
	// numbers are then lower bounds.
	Lost *loader.Lost `json:"lost,omitempty"`
	// Stale are cgroups whose stat files were skipped: they were removed.
	Stale []string `json:"stale_stat_files,omitempty"`
}

// ReadJSON is JSON with the notes as more top-level fields.
func ReadJSON(w io.Writer, stats []reclaim.Stat, notes ReadNotes) error {
	bw := bufio.NewWriter(w)
	if notes.Lost != nil || len(notes.Stale) > 0 {
		b, err := json.Marshal(notes)
		if err != nil {
			return err
		}
		bw.Write(b[:len(b)-1]) // without its }
		bw.WriteString(",")
	} else {
		bw.WriteString("{")
	}
	bw.WriteString(`"cgroups":[`)
	for i, s := range stats {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n  ")
		bw.Write(b)
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}

// Table writes one row per cgroup with human units.
func Table(w io.Writer, stats []reclaim.Stat) error {
	t := newTable(w, "CGROUP", "ID", "RECLAIMS", "TOTAL DELAY", "AVG DELAY", "RECLAIMED")
	for _, s := range stats {
		if err := t.Append(row(s)); err != nil {
			return err
		}
	}
	return t.Render()
}

// newTable starts a table whose first column (a cgroup) is left-aligned
// and whose other columns (numbers) are right-aligned.
func newTable(w io.Writer, header ...any) *tablewriter.Table {
	align := []tw.Align{tw.AlignLeft}
	for range header[1:] {
		align = append(align, tw.AlignRight)
	}
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: align}))
	t.Header(header...)
	return t
}

func row(s reclaim.Stat) []string {
	avg := "-"
	if s.Count > 0 {
		avg = Duration(s.DelayNS / s.Count)
	}
	return []string{s.Path, strconv.FormatUint(s.ID, 10), strconv.FormatUint(s.Count, 10),
		Duration(s.DelayNS), avg, Pages(s.Reclaimed)}
}

// Duration prints nanoseconds in the largest unit that keeps them readable:
// 0, 850ns, 12.3µs, 4.56ms, 1.23s.
func Duration(ns uint64) string {
	// The bounds are where rounding would print 1000.0µs or 1000.00ms.
	switch {
	case ns == 0:
		return "0"
	case ns < 1_000:
		return fmt.Sprintf("%dns", ns)
	case ns < 999_950:
		return fmt.Sprintf("%.1fµs", float64(ns)/1e3)
	case ns < 999_995_000:
		return fmt.Sprintf("%.2fms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.2fs", time.Duration(ns).Seconds())
}

// Pages prints a page count with its unit.
func Pages(n uint64) string {
	if n == 1 {
		return "1 page"
	}
	return strconv.FormatUint(n, 10) + " pages"
}
