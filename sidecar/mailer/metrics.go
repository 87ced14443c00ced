package mailer

import (
	"context"
	"math"
	"time"

	"github.com/tollgate/tollgate/internal/metrics"
)

type mailerMetrics struct {
	sent, failed, dead *metrics.CounterVec
	handoff            *metrics.HistogramVec
	listenerErrors     *metrics.Counter
}

// handoffBuckets spans a fast hand-off (well under a second) to a long outage (an hour).
var handoffBuckets = []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 900, 3600}

func newMailerMetrics(r *metrics.Registry, m *Mailer) mailerMetrics {
	if r == nil {
		r = metrics.NewRegistry() // not exported anywhere
	}
	mm := mailerMetrics{
		sent:   r.Counter("tollgate_emails_sent_total", "Upgrade-prompt emails handed to the provider.", "provider"),
		failed: r.Counter("tollgate_emails_failed_total", "Attempts at an email that failed and will be retried.", "provider"),
		dead:   r.Counter("tollgate_emails_dead_total", "Emails given up (max attempts, a permanent error or an unknown outcome).", "provider"),
		handoff: r.Histogram("tollgate_email_handoff_seconds",
			"Seconds from the limit event to the provider accepting its email.", handoffBuckets, "provider"),
		listenerErrors: r.Counter("tollgate_email_listener_errors_total",
			"Times the mailer's LISTEN connection was lost or could not be opened.").With(),
	}
	r.GaugeFunc("tollgate_email_listener_up", "1 while the mailer's LISTEN connection is up.", func() float64 {
		if m.up.Load() {
			return 1
		}
		return 0
	})
	// outbox-wide numbers (the same on every replica), read at scrape time
	status := func(names ...string) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			counts, err := m.outbox.counts(ctx)
			if err != nil {
				return math.NaN()
			}
			var n int64
			for _, s := range names {
				n += counts[s]
			}
			return float64(n)
		}
	}
	r.GaugeFunc("tollgate_emails_dead", "Emails in the outbox that were given up (status dead).", status("dead"))
	r.GaugeFunc("tollgate_emails_backlog", "Emails in the outbox still to send (pending, sending, failed).",
		status("pending", "sending", "failed"))
	return mm
}
