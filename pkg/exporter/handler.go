package exporter

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Handler serves c's families, gathered directly (see Collector), and the
// exporter's own process and Go runtime metrics through a registry.
// Concurrent scrapes queue on the source's lock: none is refused.
func Handler(c *Collector, logger *slog.Logger) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	both := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		own, err := c.Gather()
		if err != nil {
			return nil, err
		}
		runtime, err := reg.Gather()
		return append(own, runtime...), err
	})
	return promhttp.HandlerFor(both, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.HTTPErrorOnError,
	}), nil
}
