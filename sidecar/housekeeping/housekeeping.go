// Package housekeeping holds the sidecar's periodic chores on the database: pruning the idempotency keys of
// consume and require (tollgate.prune_idempotency_keys), hourly.
package housekeeping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/metrics"
)

// DefaultInterval is how often the keys are pruned; tollgate.prune_idempotency_keys keeps them at least 24 hours.
const DefaultInterval = time.Hour

// Querier is a *pgxpool.Pool (connected as a member of tollgate_sidecar) or a *pgx.Conn.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Options configure a Pruner.
type Options struct {
	DB Querier
	// Interval is the time between prunes; 0 means DefaultInterval.
	Interval time.Duration
	// Ticks, when set, replaces the ticker of Interval (tests send on it).
	Ticks <-chan time.Time
	// OnPrune, when set, is told of every prune: the keys deleted, or the error.
	OnPrune func(deleted int64, err error)
	Logger  *slog.Logger
	// Metrics gets tollgate_idempotency_keys_pruned_total and tollgate_idempotency_prune_errors_total; nil
	// means a private registry.
	Metrics *metrics.Registry
}

// Pruner deletes expired idempotency keys at start and every Interval: a sidecar component.
type Pruner struct {
	opt     Options
	log     *slog.Logger
	pruned  *metrics.CounterVec
	errors  *metrics.CounterVec
	started atomic.Bool
}

// NewPruner returns a Pruner; DB is required.
func NewPruner(opt Options) (*Pruner, error) {
	if opt.DB == nil {
		return nil, errors.New("housekeeping: Options.DB is required")
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = metrics.NewRegistry()
	}
	return &Pruner{
		opt: opt,
		log: opt.Logger.With("component", "idempotency-prune"),
		pruned: opt.Metrics.Counter("tollgate_idempotency_keys_pruned_total",
			"Idempotency keys of consume and require deleted after their 24 hours (tollgate.prune_idempotency_keys)."),
		errors: opt.Metrics.Counter("tollgate_idempotency_prune_errors_total",
			"Prunes of idempotency keys that failed (retried at the next interval)."),
	}, nil
}

// Name is the component's name.
func (p *Pruner) Name() string { return "idempotency-prune" }

// Ready is always nil: a failed prune is retried at the next interval and harms nothing meanwhile.
func (p *Pruner) Ready(context.Context) error { return nil }

// Run prunes once, then at every tick, until ctx ends. A failed prune is logged and retried at the next tick.
func (p *Pruner) Run(ctx context.Context) error {
	if p.started.Swap(true) {
		return errors.New("housekeeping: Run called twice")
	}
	ticks := p.opt.Ticks
	if ticks == nil {
		t := time.NewTicker(p.opt.Interval)
		defer t.Stop()
		ticks = t.C
	}
	p.Prune(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
			p.Prune(ctx)
		}
	}
}

// Prune deletes the keys older than 24 hours once, and returns how many.
func (p *Pruner) Prune(ctx context.Context) (int64, error) {
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var n int64
	err := p.opt.DB.QueryRow(qctx, `SELECT tollgate.prune_idempotency_keys()`).Scan(&n)
	switch {
	case err != nil && ctx.Err() != nil:
		return 0, ctx.Err() // shutting down
	case err != nil:
		err = fmt.Errorf("tollgate.prune_idempotency_keys: %w", err)
		p.errors.With().Inc()
		p.log.Warn("pruning idempotency keys failed; retrying at the next interval", "err", err, "in", p.opt.Interval)
	default:
		p.pruned.With().Add(float64(n))
		p.log.Debug("pruned idempotency keys", "deleted", n)
	}
	if p.opt.OnPrune != nil {
		p.opt.OnPrune(n, err)
	}
	return n, err
}
