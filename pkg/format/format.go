// Package format prints reclaim statistics as a table for people or as
// JSON for scripts.
package format

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/identity"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// notes is what read --json says beside the numbers, from the snapshot's
// health: the lost counters when anything was lost or waited, and the
// stat files skipped.
type notes struct {
	Lost  *readout.Lost `json:"lost,omitempty"`
	Stale []string      `json:"stale_stat_files,omitempty"`
}

// jsonBuffer is JSON's write size: read --all --json of 10,000 cgroups is
// 6.7 MB, which bufio's default 4 KiB made 1,636 writes to a pipe.
const jsonBuffer = 64 << 10

// JSON writes {"cgroups":[...]} with one cgroup per line: readable, and
// several times faster than indenting thousands of objects. An empty list
// is [] rather than null, so that scripts can index it without a check.
// What the health has to say (see notes) comes first, as more top-level
// fields.
func JSON(w io.Writer, snap *readout.Snapshot) error {
	bw := bufio.NewWriterSize(w, jsonBuffer)
	n := notes{Stale: snap.Health.Stale}
	if l := snap.Health.Lost; l != (readout.Lost{}) {
		n.Lost = &l
	}
	if n.Lost != nil || len(n.Stale) > 0 {
		b, err := json.Marshal(n)
		if err != nil {
			return err
		}
		bw.Write(b[:len(b)-1]) // without its }
		bw.WriteString(",")
	} else {
		bw.WriteString("{")
	}
	bw.WriteString(`"cgroups":[`)
	var line []byte
	var ids identity.Parser
	for i := range snap.Rows {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n  ")
		line = snap.Rows[i].AppendJSONIn(line[:0], &ids)
		bw.Write(line)
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}

// table is rows of cells printed in columns two spaces apart, the first
// left-aligned (a cgroup), the others right-aligned (numbers), without
// borders, like ps and kubectl: narrow, and awk '{print $3}' works.
type table struct {
	rows [][]string // the header first
}

func newTable(header ...string) *table {
	return &table{rows: [][]string{header}}
}

// append adds a row. Its cells are escaped (see escape.String): names in
// them come from the system, and a cgroup's name must not drive the
// terminal of whoever reads the table.
func (t *table) append(cells ...string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = escape.String(c)
	}
	t.rows = append(t.rows, row)
}

// widths are the columns' widths in runes.
func (t *table) widths() []int {
	w := make([]int, len(t.rows[0]))
	for _, r := range t.rows {
		for c, cell := range r {
			w[c] = max(w[c], utf8.RuneCountInString(cell))
		}
	}
	return w
}

func (t *table) write(w io.Writer) error {
	widths := t.widths()
	bw := bufio.NewWriter(w)
	var line strings.Builder
	for _, r := range t.rows {
		line.Reset()
		for c, cell := range r {
			pad := strings.Repeat(" ", widths[c]-utf8.RuneCountInString(cell))
			if c == 0 {
				line.WriteString(cell + pad)
			} else {
				line.WriteString("  " + pad + cell)
			}
		}
		bw.WriteString(strings.TrimRight(line.String(), " "))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// Latency prints nanoseconds in two or three significant digits, at most
// five columns below 100,000 s: 0, 850ns, 1.2µs, 12µs, 850µs, 4.6ms,
// 1.2s, 3600s. Quantiles are estimates within a quarter octave anyway;
// more digits would be noise. It is cgrstat's one way to print a time:
// read's table and histograms, check's table, stress's and watch's.
func Latency(ns uint64) string {
	if ns < 1000 {
		if ns == 0 {
			return "0"
		}
		return fmt.Sprintf("%dns", ns)
	}
	v := float64(ns)
	for _, u := range []struct {
		div  float64
		name string
	}{{1e3, "µs"}, {1e6, "ms"}, {1e9, "s"}} {
		x := v / u.div
		switch {
		case x < 9.95:
			return fmt.Sprintf("%.1f%s", x, u.name)
		case x < 999.5 || u.name == "s":
			return fmt.Sprintf("%.0f%s", x, u.name)
		}
	}
	panic("not reached")
}

// Pages prints a page count with its unit.
func Pages(n uint64) string {
	if n == 1 {
		return "1 page"
	}
	return strconv.FormatUint(n, 10) + " pages"
}
