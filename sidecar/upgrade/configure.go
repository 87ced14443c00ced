package upgrade

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Configurer is the sidecar component that writes the link key into the database at start-up (or turns links
// off without TOLLGATE_LINK_SECRET), retrying with backoff while the database is not there yet. /readyz reports
// it not ready until it is done.
type Configurer struct {
	db        Querier
	signer    *Signer
	publicURL string
	expires   time.Duration
	log       *slog.Logger
	done      atomic.Bool
	lastErr   atomic.Pointer[error]
	// retryMin and retryMax shape the backoff between attempts.
	retryMin, retryMax time.Duration
}

// NewConfigurer returns the component; a nil signer turns links off.
func NewConfigurer(db Querier, signer *Signer, publicURL string, expires time.Duration, log *slog.Logger) *Configurer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Configurer{db: db, signer: signer, publicURL: publicURL, expires: expires, log: log.With("component", "upgrade-links"),
		retryMin: 200 * time.Millisecond, retryMax: 30 * time.Second}
}

// Name is the component's name.
func (c *Configurer) Name() string { return "upgrade-links" }

// Ready fails until the key is written.
func (c *Configurer) Ready(context.Context) error {
	if c.done.Load() {
		return nil
	}
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return errors.New("upgrade links: not configured in the database yet")
}

// Run writes the configuration, retrying until it succeeds, then waits for ctx to end.
func (c *Configurer) Run(ctx context.Context) error {
	delay := c.retryMin
	for {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := Configure(qctx, c.db, c.signer, c.publicURL, c.expires)
		cancel()
		if err == nil {
			c.done.Store(true)
			if c.signer != nil {
				c.log.Info("upgrade links on: SQL mints them (tollgate.upgrade_link)", "public_url", c.publicURL, "expires", c.expires)
			} else {
				c.log.Info("upgrade links off: set TOLLGATE_LINK_SECRET and upgrade_links.public_url to turn them on")
			}
			<-ctx.Done()
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		c.lastErr.Store(&err)
		c.log.Warn("writing the upgrade-link key failed; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay/2 + rand.N(delay/2+1)):
		}
		delay = min(delay*2, c.retryMax)
	}
}
