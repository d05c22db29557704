package watch

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cgrstat/cgrstat/pkg/monitor"
)

// View is how a frame is laid out.
type View struct {
	Sort     Key
	Tree     bool
	Interval time.Duration
	// Width and Height bound the frame in cells; 0 means unbounded (batch
	// mode prints every row, like top -b).
	Width, Height int
	// Keys, when set, is the key help shown in the header (interactive mode).
	Keys string
}

// header is the frame's own lines before the rows.
const header = 2

// Line ends: plain text, and a terminal in raw mode, which does not turn
// "\n" into "\r\n" and keeps what a shorter line does not overwrite.
const (
	TextEOL = "\n"
	RawEOL  = "\x1b[K\r\n"
)

// Write lays out one frame of rows, ordered and cut to the view, each line
// ending in eol.
func Write(w io.Writer, v View, cur *monitor.Snapshot, rows []Row, eol string) error {
	if v.Tree {
		rows = Tree(rows, v.Sort)
	} else {
		rows = Flat(rows, v.Sort)
	}
	var b strings.Builder
	line := func(s string) {
		if v.Width > 0 && len(s) > v.Width {
			s = s[:v.Width]
		}
		b.WriteString(s)
		b.WriteString(eol)
	}
	line(fmt.Sprintf("cgrstat watch  %s  every %s  flush %s  %d cgroups, %d shown  read %s  sort %s %s",
		cur.At.Format("15:04:05"), v.Interval, cur.Health.Flush, len(cur.Cgroups), len(rows),
		cur.Took.Round(time.Millisecond/10), v.Sort, v.Keys))
	line(fmt.Sprintf("%11s %11s %11s %10s %10s %4s  %s", "STALL ms/s", "RECLAIMS/s", "PAGES/s", "P99", "PSI ms/s", "OOM", "CGROUP"))
	n := len(rows)
	if v.Height > 0 && n > v.Height-header {
		n = max(v.Height-header, 0)
	}
	for _, r := range rows[:n] {
		psi := "-"
		if r.PSI >= 0 {
			psi = fmt.Sprintf("%.1f", r.PSI*1e3)
		}
		line(fmt.Sprintf("%11.3f %11.1f %11.1f %10s %10s %4d  %s%s", r.Stall*1e3, r.Reclaims, r.Pages, latency(r.P99),
			psi, r.OOMKills, strings.Repeat("  ", r.Level), r.Name))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// latency prints seconds in the unit that keeps three digits; "-" when the
// interval had no reclaim.
func latency(s float64) string {
	switch {
	case s == 0:
		return "-"
	case s < 1e-3:
		return fmt.Sprintf("%.1fµs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.1fms", s*1e3)
	}
	return fmt.Sprintf("%.2fs", s)
}
