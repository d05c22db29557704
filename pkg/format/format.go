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

	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// JSON writes {"cgroups":[...]} with one cgroup per line: readable, and
// several times faster than indenting thousands of objects. An empty list
// is [] rather than null, so that scripts can index it without a check.
func JSON(w io.Writer, stats []reclaim.Stat) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(`{"cgroups":[`)
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

// newTable starts a table whose first column (a cgroup) is left-aligned
// and whose other columns (numbers) are right-aligned. It has no borders,
// like ps or kubectl: columns stay narrow, and awk '{print $3}' works.
func newTable(w io.Writer, header ...any) *tablewriter.Table {
	align := []tw.Align{tw.AlignLeft}
	for range header[1:] {
		align = append(align, tw.AlignRight)
	}
	plain := tw.Rendition{
		Borders:  tw.BorderNone,
		Settings: tw.Settings{Separators: tw.SeparatorsNone, Lines: tw.LinesNone},
	}
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRendition(plain), tablewriter.WithTrimSpace(tw.Off),
		tablewriter.WithHeaderAlignmentConfig(tw.CellAlignment{PerColumn: align}),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: align}))
	t.Header(header...)
	return t
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
