package exporter

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// Handler serves c's families, gathered directly (see Collector), and the
// exporter's own process and Go runtime metrics through a registry.
// Concurrent scrapes queue on the source's lock: none is refused.
//
// In the text format and OpenMetrics, what Prometheus and most scrapers
// ask for, c's families are written as text straight from the snapshot
// (textSink), the same bytes expfmt writes for their dto.MetricFamily;
// promhttp answers every other request (protobuf, name[] filters).
//
// While nothing is loaded at the source's pin path (someone ran unload),
// a scrape is answered 503 with one line, and the change is logged once;
// the first scrape after a load is back there serves it, and says so once.
func Handler(c *Collector, logger *slog.Logger) (http.Handler, error) {
	return handler(c, logger, true)
}

// handler is Handler; with direct false, promhttp answers every request
// (the reference the tests compare with).
func handler(c *Collector, logger *slog.Logger, direct bool) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	// OpenMetrics is negotiated with the scraper (Prometheus asks for it
	// first) because only it carries exemplars; a scraper that does not
	// ask for it gets the text format, the same bytes as before.
	opts := promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.HTTPErrorOnError,
		EnableOpenMetrics: true,
	}
	var gone atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
		gz, plain := negotiateGzip(r.Header)
		text := direct && plain && writesItself(format) && (r.URL == nil || !r.URL.Query().Has("name[]"))
		// The runtime's families are gathered (and written, when this
		// writes the text) while the snapshot is read: the read is
		// mostly the kernel's walk, on one CPU.
		var runtime []*dto.MetricFamily
		var runtimeText []byte
		var runtimeErr error
		gathered := make(chan struct{})
		go func() {
			defer close(gathered)
			if runtime, runtimeErr = reg.Gather(); runtimeErr == nil && text {
				runtimeText, text = encode(runtime, format)
			}
		}()
		// Read here, before promhttp, which answers 500 to any error.
		snap, done, err := c.read()
		<-gathered
		if errors.Is(err, loader.ErrNotLoaded) {
			if !gone.Swap(true) {
				logger.Warn("no load to read: answering 503 until one is there again", "err", err)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%v: no metrics until cgrstat is loaded there again\n", err)
			return
		}
		if err == nil {
			defer collect()
			defer done()
			if gone.Swap(false) {
				logger.Info("a load is there again: serving it")
			}
		}
		if err == nil {
			err = runtimeErr
		}
		if err == nil && text {
			c.writeText(w, snap, runtimeText, format, gz, opts.ErrorLog)
			return
		}
		// Any other format (protobuf), the name[] filter, an
		// Accept-Encoding this does not read as promhttp would, or an
		// error: promhttp answers from the families.
		var own []*dto.MetricFamily
		if err == nil {
			out := newDTOSink()
			c.walk(snap, out)
			own = out.families()
		}
		both := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			return append(own, runtime...), err
		})
		promhttp.HandlerFor(both, opts).ServeHTTP(w, r)
	}), nil
}

// collecting is set while collect's collection runs.
var collecting atomic.Bool

// collect starts a garbage collection once a scrape is answered, unless
// one is running. A read of 10,000 cgroups leaves megabytes of garbage
// (the walk's members and paths, the map copy) that the runtime would
// collect only once the heap has doubled, and serve's RSS follows the
// heap's peak: over 1,000 back-to-back scrapes of 10,000 cgroups its peak
// RSS was 43-48 MiB without, 33-35 with (loaded machine, same run), for
// scrapes 0-3% slower. The next scrape's read is mostly the kernel's walk
// on one CPU: the collection runs beside it. Prometheus scrapes every 15
// to 60 s, where a collection after each costs nothing.
func collect() {
	if collecting.CompareAndSwap(false, true) {
		go func() {
			goruntime.GC()
			collecting.Store(false)
		}()
	}
}

// writesItself says whether format is one the exporter writes itself
// (textSink): the text format or OpenMetrics 1.0.0 or 0.0.1.
func writesItself(format expfmt.Format) bool {
	switch format.FormatType() {
	case expfmt.TypeTextPlain:
		return true
	case expfmt.TypeOpenMetrics:
		_, params, err := mime.ParseMediaType(string(format))
		return err == nil && (params["version"] == expfmt.OpenMetricsVersion_1_0_0 || params["version"] == expfmt.OpenMetricsVersion_0_0_1)
	}
	return false
}

// encode is mfs as expfmt writes them in format, closed (OpenMetrics'
// # EOF); ok is false where expfmt refuses them (promhttp then answers
// for them, as it did).
func encode(mfs []*dto.MetricFamily, format expfmt.Format) (text []byte, ok bool) {
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, false
		}
	}
	if closer, ok := enc.(expfmt.Closer); ok {
		if err := closer.Close(); err != nil {
			return nil, false
		}
	}
	return b.Bytes(), true
}

// writeText answers a scrape in format (text or OpenMetrics) with snap's
// families written by textSinks, then the runtime's, as expfmt wrote them
// (encode), as promhttp would: the same headers, and the same bytes
// (gzipped, at BestSpeed: see gzipPool). A failed write (the scraper went
// away) is logged and ends the answer, as promhttp does.
func (c *Collector) writeText(w http.ResponseWriter, snap *readout.Snapshot, runtime []byte, format expfmt.Format, gz bool, log promhttp.Logger) {
	om := format.FormatType() == expfmt.TypeOpenMetrics
	sinks := c.textSinks(om)
	defer c.putTextSinks(sinks)
	outs := make([]sink, len(sinks))
	for i, s := range sinks {
		outs[i] = s
	}
	c.walk(snap, outs...)
	h := w.Header()
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Type", string(format))
	var out io.Writer = w
	if gz {
		h.Set("Content-Encoding", "gzip")
		z := gzipPool.Get().(*gzip.Writer)
		z.Reset(w)
		defer func() { _ = z.Close(); gzipPool.Put(z) }()
		out = z
	}
	err := writeText(out, om, sinks)
	if err == nil {
		_, err = out.Write(runtime)
	}
	if err != nil {
		log.Println("error encoding and sending metric family:", err)
	}
}

// gzipPool holds gzip writers at BestSpeed. A scrape of 10,000 cgroups is
// about 1.3 MB of text: gzip's default level took 7 ms for it and
// BestSpeed 1.6 ms (measured in-process), for 41 KB instead of 33.
var gzipPool = sync.Pool{New: func() any {
	z, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return z
}}

// negotiateGzip chooses the Content-Encoding from Accept-Encoding as
// promhttp does, between identity and gzip: gzip when its quality is above
// identity's and above 0. ok is false for a header it does not read
// exactly as promhttp does (parameters other than q, an odd quality, an
// empty element), or one that leaves nothing acceptable; promhttp then
// answers itself.
func negotiateGzip(h http.Header) (gz, ok bool) {
	identity, gzipQ := -1.0, -1.0
	for _, v := range h.Values("Accept-Encoding") {
		if strings.HasPrefix(v, " ") || strings.HasPrefix(v, "\t") {
			return false, false // promhttp reads none of it
		}
		for _, spec := range strings.Split(v, ",") {
			coding, q, found := strings.Cut(spec, ";")
			coding = strings.Trim(coding, " \t")
			quality := 1.0
			if found {
				qs, isQ := strings.CutPrefix(strings.Trim(q, " \t"), "q=")
				var err error
				if quality, err = strconv.ParseFloat(qs, 64); !isQ || err != nil || !plainQuality.MatchString(qs) {
					return false, false
				}
			}
			if coding == "" || strings.ContainsFunc(coding, func(r rune) bool { return !isTokenRune(r) }) {
				return false, false
			}
			if coding == "identity" || coding == "*" {
				identity = max(identity, quality)
			}
			if coding == "gzip" || coding == "*" {
				gzipQ = max(gzipQ, quality)
			}
		}
	}
	if max(identity, gzipQ) == 0 {
		return false, false
	}
	return gzipQ > identity && gzipQ > 0, true
}

// plainQuality is a quality value as RFC 9110 writes it.
var plainQuality = regexp.MustCompile(`^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$`)

// isTokenRune: a character of an HTTP token (RFC 9110).
func isTokenRune(r rune) bool {
	return r < 127 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}
