package exporter

import (
	"bytes"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// textSink writes the exposition text of cgrstat's families itself, in
// the text format (0.0.4) or OpenMetrics (1.0.0, 0.0.1: the same text),
// byte for byte what expfmt's encoders write for dtoSink's families
// (TestTextSinkAgrees). At 10,000 cgroups, building a dto.Metric per
// series and encoding it took twice as long as writing the lines (and
// made garbage of a few MB each scrape): a row's cgroup label is escaped
// once for all its series, numbers are appended with strconv, and each
// family's lines go to a buffer of their own, kept from scrape to scrape.
type textSink struct {
	om    bool
	lines [][]byte // by family index
	label []byte   // the row's: cgroup="<path>"
	cum   [promBuckets - 1]uint64
}

func newTextSink(om bool) *textSink {
	return &textSink{om: om, lines: make([][]byte, len(families))}
}

// reset empties the sink for a scrape in format om, keeping its room.
func (s *textSink) reset(om bool) {
	s.om = om
	for i := range s.lines {
		s.lines[i] = s.lines[i][:0]
	}
}

// textParts is how many parts of a snapshot's rows are written at once,
// each by a goroutine into a textSink of its own (Collector.walk): the
// scrape is all a serve does, the walk of 10,000 cgroups took 2.5 ms
// (a third of it identity.Parser), and this host has two CPUs.
const textParts = 2

// writeText writes every family that has series in the sinks, in
// declaration order as dtoSink.families lists them, each family's lines
// from the sinks in turn (the rows' order: see Collector.walk).
func writeText(w io.Writer, om bool, sinks []*textSink) error {
	for _, f := range families {
		header := true
		for _, s := range sinks {
			b := s.lines[f.index]
			if len(b) == 0 {
				continue
			}
			if header {
				header = false
				h := f.header[0]
				if om {
					h = f.header[1]
				}
				if _, err := w.Write(h); err != nil {
					return err
				}
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *textSink) row(path string) {
	s.label = appendLabel(s.label[:0], cgroupName, path)
}

func (s *textSink) rowValue(f *family, cause *causeLabel, v float64) {
	b := append(s.lines[f.index], f.name...)
	b = s.rowLabels(b, cause)
	b = append(b, "} "...)
	b = s.appendFloat(b, v)
	s.lines[f.index] = append(b, '\n')
}

// rowLabels appends the row's labels, the opening brace included.
func (s *textSink) rowLabels(b []byte, cause *causeLabel) []byte {
	b = append(b, '{')
	if cause != nil {
		b = append(b, cause.text...)
	}
	return append(b, s.label...)
}

// rowHist writes a histogram as the encoders write it: a line per bucket,
// +Inf always last (with its exemplar if any), then _sum and _count.
// OpenMetrics writes bucket counts as integers, the text format as floats.
func (s *textSink) rowHist(f *family, cause *causeLabel, h *reclaim.Hist, sumNS uint64, ex []*dto.Exemplar) {
	count := cumulativeTo(h, s.cum[:])
	b := s.lines[f.index]
	bucket := func(le string, n uint64, e *dto.Exemplar) {
		b = append(b, f.name...)
		b = append(b, "_bucket"...)
		b = s.rowLabels(b, cause)
		b = append(b, le...)
		b = s.appendCount(b, n)
		if e != nil && s.om && len(e.Label) > 0 {
			b = appendExemplar(b, e)
		}
		b = append(b, '\n')
	}
	les := leText[0]
	if s.om {
		les = leText[1]
	}
	var e *dto.Exemplar
	for j := range bounds {
		if ex != nil {
			e = ex[j]
		}
		bucket(les[j], s.cum[j], e)
	}
	if ex != nil {
		e = ex[len(bounds)]
	}
	bucket(les[len(bounds)], count, e)
	b = append(b, f.name...)
	b = append(b, "_sum"...)
	b = s.rowLabels(b, cause)
	b = append(b, "} "...)
	b = s.appendFloat(b, seconds(sumNS))
	b = append(b, '\n')
	b = append(b, f.name...)
	b = append(b, "_count"...)
	b = s.rowLabels(b, cause)
	b = append(b, "} "...)
	b = s.appendCount(b, count)
	s.lines[f.index] = append(b, '\n')
}

func (s *textSink) value(f *family, v float64, labelValues ...string) {
	b := append(s.lines[f.index], f.name...)
	for i, v := range labelValues {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		b = appendLabel(append(b, sep), f.labels[i], v)
	}
	if len(labelValues) > 0 {
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = s.appendFloat(b, v)
	s.lines[f.index] = append(b, '\n')
}

func (s *textSink) appendFloat(b []byte, v float64) []byte {
	return appendFormatFloat(b, v, s.om)
}

func (s *textSink) appendCount(b []byte, n uint64) []byte {
	if s.om {
		return strconv.AppendUint(b, n, 10)
	}
	return appendFormatFloat(b, float64(n), false)
}

// appendLabel appends name="value", the value escaped as both formats
// escape it (backslash, newline, double quote); the rest of its bytes go
// as they are, as the encoders write them.
func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	if strings.IndexByte(value, '\\') < 0 && strings.IndexByte(value, '\n') < 0 && strings.IndexByte(value, '"') < 0 {
		// What almost every path is: three vector scans find nothing
		// faster than one scan for any of three bytes.
		b = append(b, value...)
		return append(b, '"')
	}
	for {
		i := strings.IndexAny(value, "\\\n\"")
		if i < 0 {
			break
		}
		b = append(b, value[:i]...)
		switch value[i] {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '"':
			b = append(b, '\\', '"')
		}
		value = value[i+1:]
	}
	b = append(b, value...)
	return append(b, '"')
}

// labelValue is v as the exposition can carry it (scrape.cgroup applies
// it to the path, the one label value from outside). Both formats (and
// protobuf's strings) take UTF-8 only, and a cgroup's name is any bytes
// its creator chose: one name with a stray byte made the whole scrape
// unparseable (Prometheus and promtool refuse it), for every cgroup of
// the host. Each invalid byte becomes U+FFFD, as read --json's
// encoding/json writes it, so that the series still names the cgroup
// read --json shows.
func labelValue(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	b := make([]byte, 0, len(v)+8)
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, string(utf8.RuneError)...)
		} else {
			b = append(b, v[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// appendFormatFloat formats f as the text format's encoder does, or with
// om as OpenMetrics' does, which gives an integral value ".0".
func appendFormatFloat(b []byte, f float64, om bool) []byte {
	n := len(b)
	switch {
	case f == 1:
		b = append(b, '1')
	case f == 0:
		b = append(b, '0')
	case f == -1:
		b = append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	default:
		b = strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	if om && !bytes.ContainsAny(b[n:], "e.") {
		b = append(b, '.', '0')
	}
	return b
}

// appendExemplar appends " # {labels} value timestamp", as OpenMetrics'
// encoder writes an exemplar.
func appendExemplar(b []byte, e *dto.Exemplar) []byte {
	b = append(b, " # "...)
	for i, l := range e.Label {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		b = appendLabel(append(b, sep), l.GetName(), l.GetValue())
	}
	b = append(b, "} "...)
	b = appendFormatFloat(b, e.GetValue(), true)
	if e.Timestamp != nil {
		b = append(b, ' ')
		b = appendFormatFloat(b, float64(e.Timestamp.AsTime().UnixNano())/1e9, true)
	}
	return b
}

// leText are the buckets' le labels and the space before the count, as
// each format writes them ([0] text, [1] OpenMetrics), +Inf last.
var leText = func() (out [2][]string) {
	for j := 0; j <= len(bounds); j++ {
		le := math.Inf(1)
		if j < len(bounds) {
			le = bounds[j]
		}
		out[0] = append(out[0], `,le="`+string(appendFormatFloat(nil, le, false))+`"} `)
		out[1] = append(out[1], `,le="`+string(appendFormatFloat(nil, le, true))+`"} `)
	}
	return out
}()

// headers sets each family's HELP and TYPE lines in both formats, as
// expfmt writes them (OpenMetrics names a counter without its _total):
// taken from the encoders themselves.
func headers() {
	for _, f := range families {
		m := &dto.Metric{}
		switch f.typ {
		case counterType:
			m.Counter = &dto.Counter{}
		case gaugeType:
			m.Gauge = &dto.Gauge{}
		case histogramType:
			m.Histogram = &dto.Histogram{}
		}
		mf := &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: &f.typ, Metric: []*dto.Metric{m}}
		for i, encode := range []func(*bytes.Buffer, *dto.MetricFamily) error{
			func(w *bytes.Buffer, mf *dto.MetricFamily) error {
				_, err := expfmt.MetricFamilyToText(w, mf)
				return err
			},
			func(w *bytes.Buffer, mf *dto.MetricFamily) error {
				_, err := expfmt.MetricFamilyToOpenMetrics(w, mf)
				return err
			},
		} {
			var w bytes.Buffer
			if err := encode(&w, mf); err != nil {
				panic("exporter: " + f.name + ": " + err.Error())
			}
			// HELP, then TYPE: the first two lines.
			h := w.Bytes()
			end := bytes.IndexByte(h, '\n')
			end += 1 + bytes.IndexByte(h[end+1:], '\n')
			f.header[i] = h[:end+1]
		}
	}
}

func init() { headers() }
