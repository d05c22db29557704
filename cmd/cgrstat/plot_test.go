package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// The README's picture of the dashboard's main panel is drawn from the
// real Prometheus' answer (TestKernelDashboardQueries with
// CGRSTAT_DASHBOARD_PNG set) with the standard library's image packages
// and the small bitmap font below: Grafana cannot run here, and a plotting
// library would be a dependency for one picture.

// glyphs is a 5x7 bitmap font, one byte per row, bit 4 leftmost. Capitals
// without a glyph are drawn as their small letter. The letters in
// descenders are drawn two rows lower: their first five rows are the body.
var glyphs = map[rune][7]byte{
	' ': {}, '0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, '1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, '3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, '5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, '7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, '9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'a': {0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F}, 'b': {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E},
	'c': {0, 0, 0x0E, 0x10, 0x10, 0x11, 0x0E}, 'd': {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F},
	'e': {0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E}, 'f': {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08},
	'g': {0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, 'h': {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11},
	'i': {0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E}, 'j': {0x02, 0, 0x06, 0x02, 0x02, 0x12, 0x0C},
	'k': {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, 'l': {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'm': {0, 0, 0x1A, 0x15, 0x15, 0x11, 0x11}, 'n': {0, 0, 0x16, 0x19, 0x11, 0x11, 0x11},
	'o': {0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E}, 'p': {0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10},
	'q': {0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01}, 'r': {0, 0, 0x16, 0x19, 0x10, 0x10, 0x10},
	's': {0, 0, 0x0E, 0x10, 0x0E, 0x01, 0x1E}, 't': {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06},
	'u': {0, 0, 0x11, 0x11, 0x11, 0x13, 0x0D}, 'v': {0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'w': {0, 0, 0x11, 0x11, 0x15, 0x15, 0x0A}, 'x': {0, 0, 0x11, 0x0A, 0x04, 0x0A, 0x11},
	'y': {0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, 'z': {0, 0, 0x1F, 0x02, 0x04, 0x08, 0x1F},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, 'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, 'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, '\'': {0x0C, 0x04, 0x08, 0, 0, 0, 0},
	'.': {0, 0, 0, 0, 0, 0x0C, 0x0C}, ',': {0, 0, 0, 0, 0x0C, 0x04, 0x08}, ':': {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0},
	'/': {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}, '-': {0, 0, 0, 0x1F, 0, 0, 0}, '_': {0, 0, 0, 0, 0, 0, 0x1F},
	'(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, ')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	'+': {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0}, '=': {0, 0, 0x1F, 0, 0x1F, 0, 0},
	'%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, '…': {0, 0, 0, 0, 0, 0x15, 0},
	'µ': {0x11, 0x11, 0x11, 0x13, 0x1D, 0x10, 0x10}, ';': {0, 0x0C, 0x0C, 0, 0x0C, 0x04, 0x08},
}

const descenders = "gpqyµ"

const (
	fontScale = 2
	charW     = 6 * fontScale // advance: 5 columns and a gap
	charH     = 7 * fontScale
)

type canvas struct{ *image.RGBA }

func (c canvas) text(x, y int, s string, col color.Color) {
	for _, r := range s {
		g, ok := glyphs[r]
		if !ok {
			g, ok = glyphs[[]rune(strings.ToLower(string(r)))[0]]
		}
		if !ok {
			g = [7]byte{0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F}
		}
		drop := 0
		if strings.ContainsRune(descenders, r) {
			drop = 2 * fontScale
		}
		for row := range 7 {
			for bit := range 5 {
				if g[row]&(0x10>>bit) != 0 {
					c.rect(x+bit*fontScale, y+drop+row*fontScale, fontScale, fontScale, col)
				}
			}
		}
		x += charW
	}
}

func (c canvas) rect(x, y, w, h int, col color.Color) {
	for i := x; i < x+w; i++ {
		for j := y; j < y+h; j++ {
			c.Set(i, j, col)
		}
	}
}

// line draws a line two pixels wide (Bresenham, each point a 2x2 square).
func (c canvas) line(x0, y0, x1, y1 int, col color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		c.rect(x0, y0, 2, 2, col)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e // both steps decide on the error before either
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// Grafana's classic palette, in its order.
var palette = []color.RGBA{{0x73, 0xBF, 0x69, 255}, {0xF2, 0xCC, 0x0C, 255}, {0x57, 0x94, 0xF2, 255},
	{0xFF, 0x98, 0x30, 255}, {0xF2, 0x49, 0x5C, 255}, {0xB8, 0x77, 0xD9, 255}, {0x70, 0xDB, 0xED, 255},
	{0x8A, 0xB8, 0xFF, 255}, {0xCA, 0x95, 0xE5, 255}, {0xFF, 0xB3, 0x57, 255}}

// shortName is a cgroup path below prefix, each component longer than 20
// bytes cut to its first 12 and an ellipsis (as read's table does).
func shortName(path, prefix string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, prefix), "/")
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		if len(p) > 20 {
			parts[i] = p[:12] + "…"
		}
	}
	return strings.Join(parts, "/")
}

// perSecond formats a rate of seconds per second.
func perSecond(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1e-3:
		return fmt.Sprintf("%.3g µs/s", v*1e6)
	case v < 1:
		return fmt.Sprintf("%.3g ms/s", v*1e3)
	}
	return fmt.Sprintf("%.3g s/s", v)
}

// renderPanel draws a time series panel: title, axes, one line per series,
// and a legend with each series' maximum. Times are Unix seconds.
func renderPanel(title, caption string, series []promSeries, names []string, from, to time.Time) *image.RGBA {
	const w, left, right, top, plotH = 1200, 140, 30, 60, 330
	legendTop := top + plotH + 50
	h := legendTop + len(series)*(charH+8) + 30
	c := canvas{image.NewRGBA(image.Rect(0, 0, w, h))}
	ink, grid, faint := color.RGBA{0x20, 0x20, 0x20, 255}, color.RGBA{0xE4, 0xE4, 0xE4, 255}, color.RGBA{0x70, 0x70, 0x70, 255}
	c.rect(0, 0, w, h, color.White)
	c.text(left, 14, title, ink)
	c.text(left, 36, caption, faint)

	ymax := 0.0
	for _, s := range series {
		ymax = math.Max(ymax, s.max())
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax *= 1.1
	t0, t1 := float64(from.UnixMilli())/1e3, float64(to.UnixMilli())/1e3
	plotW := w - left - right
	px := func(t float64) int { return left + int(math.Round((t-t0)/(t1-t0)*float64(plotW))) }
	py := func(v float64) int { return top + plotH - int(math.Round(v/ymax*float64(plotH))) }

	for i := 0; i <= 4; i++ { // y grid and labels
		v := ymax * float64(i) / 4
		y := py(v)
		c.rect(left, y, plotW, 1, grid)
		label := perSecond(v)
		c.text(left-10-len([]rune(label))*charW, y-charH/2, label, faint)
	}
	span := t1 - t0
	stepSec := 1.0
	for _, s := range []float64{1, 2, 5, 10, 20, 30, 60, 120, 300} {
		if stepSec = s; span/s <= 10 {
			break
		}
	}
	for s := 0.0; s <= span; s += stepSec { // x grid and labels
		x := px(t0 + s)
		c.rect(x, top, 1, plotH, grid)
		label := fmt.Sprintf("%.0fs", s)
		c.text(x-len(label)*charW/2, top+plotH+10, label, faint)
	}
	c.rect(left, top+plotH, plotW, 1, ink)
	c.rect(left, top, 1, plotH, ink)

	for i, s := range series {
		col := palette[i%len(palette)]
		for j := 1; j < len(s.Values); j++ {
			if s.Times[j]-s.Times[j-1] > 3 { // a gap: not in the top 10 then
				continue
			}
			c.line(px(s.Times[j-1]), py(s.Values[j-1]), px(s.Times[j]), py(s.Values[j]), col)
		}
		y := legendTop + i*(charH+8)
		c.rect(left, y+charH/2-1, 24, 4, col)
		c.text(left+34, y, names[i], ink)
		m := "max " + perSecond(s.max())
		c.text(w-right-len([]rune(m))*charW, y, m, ink)
	}
	return c.RGBA
}

// writePanelPNG draws the main panel's answer into file, legend sorted by
// maximum as Grafana's table legend sorts it.
func writePanelPNG(t *testing.T, file, title string, res []promSeries, prefix string, from, to time.Time) {
	t.Helper()
	var keep []promSeries
	for _, s := range res {
		if len(s.Values) > 0 {
			keep = append(keep, s)
		}
	}
	for i := range keep { // by maximum, descending
		for j := i + 1; j < len(keep); j++ {
			if keep[j].max() > keep[i].max() {
				keep[i], keep[j] = keep[j], keep[i]
			}
		}
	}
	names := make([]string, len(keep))
	for i, s := range keep {
		names[i] = shortName(s.Metric["cgroup"], prefix)
	}
	caption := fmt.Sprintf("Prometheus scraping cgrstat serve every 1s, %s; long names cut",
		to.UTC().Format("2006-01-02 15:04 MST"))
	img := renderPanel(title, caption, keep, names, from, to)
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s: %d series", file, len(keep))
}

// TestRenderPanel draws two known series and finds each line's colour
// where its values put it.
func TestRenderPanel(t *testing.T) {
	from := time.Unix(1000, 0)
	to := from.Add(60 * time.Second)
	flat := func(v float64) promSeries {
		s := promSeries{}
		for i := 0; i <= 60; i += 2 {
			s.Times = append(s.Times, float64(1000+i))
			s.Values = append(s.Values, v)
		}
		return s
	}
	img := renderPanel("T", "c", []promSeries{flat(0.5), flat(0.25)}, []string{"/a", "/a/b"}, from, to)
	// ymax is 0.55: 0.5 is at 1/11 of the plot from its top, 0.25 at 6/11.
	for i, frac := range []float64{1.0 / 11, 6.0 / 11} {
		y := 60 + int(math.Round(frac*330))
		if got := img.RGBAAt(600, y); got != palette[i] {
			t.Errorf("series %d: pixel (600,%d) is %v, want %v", i, y, got, palette[i])
		}
	}
	c := canvas{image.NewRGBA(image.Rect(0, 0, 50, 50))}
	for _, l := range [][4]int{{0, 0, 40, 3}, {3, 0, 0, 40}, {40, 40, 0, 0}, {5, 5, 5, 5}} {
		c.line(l[0], l[1], l[2], l[3], palette[0]) // ends, at every slope
		if c.RGBAAt(l[2], l[3]) != palette[0] {
			t.Errorf("line %v does not reach its end", l)
		}
	}
	if shortName("/x/cgrstat-1/kubepods/pod0b3c9a5e-8f2d-4c1e-9a7b-2d4e6f8a1c3b", "/x") != "cgrstat-1/kubepods/pod0b3c9a5e-…" {
		t.Errorf("shortName: %q", shortName("/x/cgrstat-1/kubepods/pod0b3c9a5e-8f2d-4c1e-9a7b-2d4e6f8a1c3b", "/x"))
	}
}
