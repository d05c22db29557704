package exporter

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/cgrstat/cgrstat/pkg/loader"
)

// Handler serves c's families, gathered directly (see Collector), and the
// exporter's own process and Go runtime metrics through a registry.
// Concurrent scrapes queue on the source's lock: none is refused.
//
// While nothing is loaded at the source's pin path (someone ran unload),
// a scrape is answered 503 with one line, and the change is logged once;
// the first scrape after a load is back there serves it, and says so once.
func Handler(c *Collector, logger *slog.Logger) (http.Handler, error) {
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
		// Gathered here, before promhttp, which answers 500 to any error.
		own, err := c.Gather()
		if errors.Is(err, loader.ErrNotLoaded) {
			if !gone.Swap(true) {
				logger.Warn("no load to read: answering 503 until one is there again", "err", err)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%v: no metrics until cgrstat is loaded there again\n", err)
			return
		}
		if err == nil && gone.Swap(false) {
			logger.Info("a load is there again: serving it")
		}
		both := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			if err != nil {
				return nil, err
			}
			runtime, err := reg.Gather()
			return append(own, runtime...), err
		})
		promhttp.HandlerFor(both, opts).ServeHTTP(w, r)
	}), nil
}
