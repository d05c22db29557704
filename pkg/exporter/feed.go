package exporter

import (
	"context"
	"log/slog"
	"time"

	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// ExemplarRate is the most events per second serve takes from the event
// stream (and its burst): a bucket shows only its most recent reclaim, and
// a scrape comes every 15 to 60 s, so 100 a second keeps every bucket
// fresh while a storm costs serve at most that many events, and the
// collectors the rate limit's compare for the rest.
const ExemplarRate = 100

// feedRetry is how often Feed tries again to subscribe when it could not.
const feedRetry = 2 * time.Second

// Feed keeps x fed from the event stream of the load at pinPath until ctx
// ends, subscribed with opts (threshold, subtree, rate). The stream
// follows the load: after an unload it waits for the next load there, and
// reads that one. When it cannot subscribe (no load, a load older than the
// event stream, every subscriber slot taken) it says so once, at Warn,
// serves without exemplars, and tries again; it says so once more when it
// can. It returns when ctx ends, its subscription closed.
func Feed(ctx context.Context, x *Exemplars, pinPath string, opts events.Options, logger *slog.Logger) {
	var said string // the last failure logged
	tick := time.NewTicker(feedRetry)
	defer tick.Stop()
	for {
		r, err := readout.OpenEvents(pinPath, opts)
		if err != nil {
			if err.Error() != said {
				logger.Warn("serving without exemplars until the event stream can be read", "err", err)
				said = err.Error()
			}
		} else {
			logger.Info("exemplars: reading the event stream", "slot", r.Slot(), "min", opts.Min)
			said = ""
			done := make(chan struct{})
			var rerr error // the Read that ended the stream: read once done is closed
			go func() {
				defer close(done)
				for {
					e, err := r.Read()
					if err != nil {
						rerr = err // closed below, or unloaded (events.ErrUnloaded) or broken: subscribed again
						return
					}
					x.Add(e)
				}
			}()
			select {
			case <-ctx.Done():
				r.Close()
				<-done
				logDrops(r, logger)
				return
			case <-done:
			}
			r.Close()
			logDrops(r, logger)
			logger.Info("exemplars: the event stream ended; subscribing again", "err", rerr)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// logDrops says what a closed reader's slot dropped, if anything.
func logDrops(r *readout.EventReader, logger *slog.Logger) {
	if c, err := r.Counts(); err == nil && c.Dropped() > 0 {
		logger.Info("exemplars: events the stream dropped", "sent", c.Sent, "rate_limit", c.RateLimit, "ring_full", c.RingFull)
	}
}
