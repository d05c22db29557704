package watch

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/readout"
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
func Write(w io.Writer, v View, cur *readout.Snapshot, rows []Row, eol string) error {
	if v.Tree {
		rows = Tree(rows, v.Sort)
	} else {
		rows = Flat(rows, v.Sort)
	}
	var b strings.Builder
	line := func(s string) {
		if v.Width > 0 && utf8.RuneCountInString(s) > v.Width {
			s = string([]rune(s)[:v.Width])
		}
		b.WriteString(s)
		b.WriteString(eol)
	}
	line(fmt.Sprintf("cgrstat watch  %s  every %s  flush %s  %d cgroups, %d shown  read %s  sort %s %s",
		cur.At.Format("15:04:05"), v.Interval, cur.Health.Flush, cur.Cgroups, len(rows),
		cur.Took.Round(time.Millisecond/10), v.Sort, v.Keys))
	line(fmt.Sprintf("%11s %11s %11s %10s %10s %10s %4s  %s", "STALL ms/s", "RECLAIMS/s", "PAGES/s", "P99", "PSI ms/s", "THROT ms/s", "OOM", "CGROUP"))
	n := len(rows)
	if v.Height > 0 && n > v.Height-header {
		n = max(v.Height-header, 0)
	}
	for _, r := range rows[:n] {
		psi := "-"
		if r.PSI >= 0 {
			psi = fmt.Sprintf("%.1f", r.PSI*1e3)
		}
		// "n/a": the kernel refused to let the throttle be measured; not 0.
		throttle := "n/a"
		if r.Throttle >= 0 {
			throttle = fmt.Sprintf("%.1f", r.Throttle*1e3)
		}
		numbers := fmt.Sprintf("%11.3f %11.1f %11.1f %10s %10s %10s %4d  ", r.Stall*1e3, r.Reclaims, r.Pages, latency(r.P99), psi, throttle, r.OOMKills)
		// The name is escaped (it comes from whoever named the cgroup) and,
		// where the terminal is too narrow, loses its middle as in read's
		// table: the ends tell cgroups apart, a common prefix does not.
		name := strings.Repeat("  ", r.Level) + escape.String(r.Name)
		if v.Width > 0 {
			name = format.Elide(name, v.Width-utf8.RuneCountInString(numbers))
		}
		line(numbers + name)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// latency prints seconds as read's table does (format.Latency); "-" when
// the interval had no reclaim.
func latency(s float64) string {
	if s == 0 {
		return "-"
	}
	return format.Latency(uint64(math.Round(s * 1e9)))
}
