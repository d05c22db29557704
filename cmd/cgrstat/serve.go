package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/exporter"
)

// defaultListen is cgrstat's port. The Prometheus project's default port
// allocation range (9100-9999) is exhausted; 9863 was free of well-known
// exporters when chosen. --web.listen-address changes it.
const defaultListen = ":9863"

func newServeCmd(g *globals) *cobra.Command {
	var mf monitorFlags
	var listen []string
	var webConfig string
	var exemplars bool
	var exemplarsMin time.Duration
	cmd := &cobra.Command{
		Use:   "serve [CGROUP]",
		Short: "Serve per-cgroup reclaim metrics to Prometheus",
		Long: `serve exposes every cgroup's reclaim totals at /metrics in the Prometheus
exposition format. Each scrape flushes the subtree below CGROUP (default: the
root) once and reads it in batches, as read --all does. Each series is a
cgroup's hierarchical total: do not sum a parent with its children. Only
GET scrapes: HEAD answers from the headers alone (a scrape's walk holds
cgroup_mutex in walk mode) and other methods get 405. The log says at start
whether serve loaded the collectors.

Reclaim is split by cause: max (a charge hit memory.max, or the v1 limit),
high (reclaim after going over memory.high), proactive (memory.reclaim) and
direct (the machine ran short). Beside it: the throttle after memory.high,
how long the kernel made the cgroup's tasks sleep as a penalty for staying
above memory.high after reclaim (cgrstat_throttle_seconds_total,
cgrstat_throttles_total and the histogram cgrstat_throttle_duration_seconds;
absent where the kernel refuses the fentry/fexit that measure it,
cgrstat_throttle_measured 0); OOM kills counted from BPF (cgroup v1 too);
and the kernel's own memory.events and memory.pressure totals
(cgrstat_memory_events_*_total, cgrstat_pressure_memory_*_seconds_total,
named as cadvisor's), read in the same walk.

By default cgroups down to --depth 3 are exported: every systemd unit and
every Kubernetes pod; --depth and --match change that. Series of removed
cgroups disappear from the next scrape.

A cgroup whose path tells what it is (a pod, a container, a systemd unit)
also has a cgrstat_cgroup_info series with its pod UID, QoS class,
container ID and runtime, unit, in kube-state-metrics' formats: join it
with * on(instance, cgroup) group_left(pod_uid, container_id).

Exemplars: to a scraper that asks for the OpenMetrics format (Prometheus
does, and stores them with --enable-feature=exemplar-storage), each bucket
of cgrstat_reclaim_duration_seconds carries the most recent reclaim of the
cgroup's subtree that fell in it: labels pid and comm of the task that
stalled, and target, the cgroup whose limit forced it, where that is not
the series' cgroup. Other scrapers get the text format, without them.
serve takes these from the collectors' event stream (as cgrstat trace
does), below CGROUP, for reclaims of at least --exemplars.min (default
1ms: the slow tail that a p99 spike is made of; 0 takes every reclaim),
at most 100 a second; it holds one of the load's 8 subscriber slots. Where
the stream cannot be read (a load made by an older cgrstat, every slot
taken), serve says so once, serves without exemplars, and tries again
every 2 s. --exemplars=false reads no events.

serve loads the collectors if nothing is loaded at --pin-path, and unloads
on exit (SIGTERM, SIGINT) only what it loaded. It opens the load for each
scrape: 'cgrstat unload' completes meanwhile, scrapes are then answered 503
(logged once), and the next load at --pin-path is served by itself. TLS and
basic auth are set in
the exporter-toolkit web configuration file (--web.config.file).`,
		Example: `  cgrstat serve
  cgrstat serve --web.listen-address 127.0.0.1:9863 --depth 4 --match '^/kubepods'
  curl -s localhost:9863/metrics | grep cgrstat_reclaim_seconds_total`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, err := mf.filter()
			if err != nil {
				return err
			}
			if webConfig != "" {
				if err := web.Validate(webConfig); err != nil {
					return usage(fmt.Errorf("--web.config.file: %w", err))
				}
			}
			if exemplarsMin < 0 {
				return usage(fmt.Errorf("--exemplars.min %s: want a duration from 0", exemplarsMin))
			}
			// Listen first: a busy port is refused before anything is loaded.
			listeners, err := listenAll(listen)
			if err != nil {
				return err
			}
			s, err := mf.openSession(cmd.Context(), g, args, filter)
			if err != nil {
				closeAll(listeners)
				return err
			}
			limitMemory(s.rec.MaxCgroups)
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			if s.loaded {
				logger.Info("loaded the collectors; unloading them on exit", "pin_path", g.pinPath)
			} else {
				logger.Info("using the collectors already loaded; leaving them loaded on exit", "pin_path", g.pinPath)
			}
			collector := exporter.New(s.src)
			stopFeed := func() {}
			if exemplars {
				stopFeed, err = feedExemplars(cmd.Context(), collector, s, exemplarsMin, logger)
				if err != nil {
					closeAll(listeners)
					return errors.Join(err, s.close())
				}
			}
			handler, err := exporter.Handler(collector, logger)
			if err == nil {
				err = serve(cmd.Context(), handler, listeners, listen, webConfig, logger)
			} else {
				closeAll(listeners)
			}
			stopFeed() // its subscriber slot is freed before an unload
			return errors.Join(err, s.close())
		},
	}
	mf.register(cmd)
	cmd.Flags().StringSliceVar(&listen, "web.listen-address", []string{defaultListen}, "addresses to listen on for HTTP (repeatable)")
	cmd.Flags().StringVar(&webConfig, "web.config.file", "", "exporter-toolkit web configuration file: TLS, basic auth")
	cmd.Flags().BoolVar(&exemplars, "exemplars", true, "attach exemplars (pid, comm, target) of recent reclaims to the latency buckets, in the OpenMetrics format; --exemplars=false reads no events")
	cmd.Flags().DurationVar(&exemplarsMin, "exemplars.min", time.Millisecond, "shortest reclaim that can be an exemplar; 0 for every reclaim")
	return cmd
}

// feedExemplars subscribes to the event stream below the served cgroup
// and attaches its exemplars to c's scrapes; stop ends the subscription.
func feedExemplars(ctx context.Context, c *exporter.Collector, s *session, min time.Duration, logger *slog.Logger) (stop func(), err error) {
	opts := events.Options{Min: min, RateLimit: exporter.ExemplarRate}
	if s.top.Rel != "/" { // the root: every event, without the subtree test
		id, err := cgroup.ID(s.top)
		if err != nil {
			return nil, err
		}
		opts.Cgroups = []uint64{id}
	}
	x := exporter.NewExemplars(exporter.DefaultExemplarLimit, s.top.Rel, s.h.TaskPaths().Path)
	c.WithExemplars(x)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		exporter.Feed(ctx, x, s.src.PinPath(), opts, logger)
	}()
	return func() { cancel(); <-done }, nil
}

// serve answers scrapes until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, metrics http.Handler, listeners []net.Listener, addrs []string, webConfig string, logger *slog.Logger) error {
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "cgrstat",
		Description: "Memory-cgroup reclaim latency, per cgroup, aggregated up the tree",
		Links:       []web.LandingLinks{{Address: "/metrics", Text: "Metrics"}},
	})
	if err != nil {
		closeAll(listeners)
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", scrapeMethods(metrics))
	mux.Handle("/", landing)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	systemdSocket := false
	flags := &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemdSocket, WebConfigFile: &webConfig}
	done := make(chan error, 1)
	go func() { done <- web.ServeMultiple(listeners, srv, flags, logger) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Let scrapes in flight finish. A connection a scraper has just opened
	// but not yet used holds Shutdown for up to 5 s (net/http counts it as
	// active), so after a short wait the rest is closed: stopping is not a
	// failure.
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		logger.Info("closing connections still open", "reason", err)
		_ = srv.Close()
	}
	logger.Info("stopped")
	return nil
}

// scrapeMethods lets only GET reach a scrape. A scrape walks the subtree,
// which in walk mode holds the kernel's cgroup_mutex: a HEAD (a load
// balancer's health check, say) is answered from the headers alone, and
// anything else is refused with 405, as the exposition format is read-only.
func scrapeMethods(metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			metrics.ServeHTTP(w, r)
		case http.MethodHead:
			w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: /metrics answers GET (HEAD without a scrape)", http.StatusMethodNotAllowed)
		}
	})
}

// listenAll opens every listener before serving, so that a bad or busy
// address is one clear error rather than a half-started server.
func listenAll(addrs []string) ([]net.Listener, error) {
	var ls []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(ls)
			return nil, usage(fmt.Errorf("--web.listen-address: %w", err))
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// limitMemory sets a soft limit on the Go heap unless GOMEMLIMIT does. A
// scrape's snapshot (a few hundred bytes per cgroup that never reclaimed,
// 2 KiB more with histograms; 2.7 KiB each before they went out of line) and
// metric families are garbage right after it; with the default GOGC alone
// the heap grows to twice that before the collector runs, and serve's RSS
// with it. The limit scales with the cgroups the maps can hold, 4 KiB each
// over a base (3 KiB before the high histogram, not measured since): it
// must stay well above one scrape's live heap, or the
// collector runs without pause (at 2 KiB per cgroup a scrape of 10,000
// took 2-4 times as long: BENCHMARKS.md).
func limitMemory(maxCgroups uint32) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(24<<20 + 4<<10*int64(maxCgroups))
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}
