// Package stripesync keeps tollgate's copy of the Stripe subscriptions, and so every customer's plan, equal to
// what Stripe says: through verified webhooks (POST /webhooks/stripe) and a periodic reconcile of every
// subscription.
//
// A webhook is a signal, never state to copy: its signature is checked on the raw body, its event id recorded
// once, and the subscription (or Checkout Session) it names is fetched from Stripe again and stored through
// tollgate.sync_subscription. So events that arrive twice, late, out of order or rendered with another API
// version cannot corrupt what is stored, and a fetch that started earlier never overwrites a later one.
//
// All writes go through the tollgate.* functions granted to the tollgate_sidecar role (sql/stripe_*.sql); the
// plan a subscription means and the customer it belongs to are decided in SQL.
package stripesync

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/metrics"
)

// Defaults of Options.
const (
	DefaultTolerance      = 5 * time.Minute // Stripe's own default for signature timestamps
	DefaultMaxBodyBytes   = 1 << 20         // Stripe's event payloads are far below this
	DefaultHandleTimeout  = 25 * time.Second
	DefaultPageSize       = 100
	DefaultResumeInterval = time.Minute
	webhookSecretSplitter = ","
)

// Options configure a Syncer.
type Options struct {
	// Pool connects as a member of tollgate_sidecar (or the owner).
	Pool *pgxpool.Pool
	// Client reads from Stripe.
	Client *Client
	// WebhookSecrets are the endpoint's signing secrets (whsec_...); a signature by any of them is accepted, so
	// a secret can be rolled. None: webhooks are answered 503.
	WebhookSecrets []string
	// Tolerance is how old a signature's timestamp may be; 0 means DefaultTolerance.
	Tolerance time.Duration
	// MaxBodyBytes bounds a webhook's body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// HandleTimeout bounds the work on one webhook (fetches and the transaction); 0 means DefaultHandleTimeout.
	HandleTimeout time.Duration
	// ReconcileInterval is the time between reconcile runs of the Reconciler component; 0 means
	// config.DefaultReconcileInterval.
	ReconcileInterval time.Duration
	// PageSize is the subscriptions per listing page (1 to 100); 0 means 100.
	PageSize int
	// ResumeInterval is how often the Resumer component looks for paused collections due to resume; 0 means
	// DefaultResumeInterval.
	ResumeInterval time.Duration
	// OnReconcile, when set, is told of every run of the Reconciler component (err is ErrLocked when another
	// session was reconciling).
	OnReconcile func(Result, error)
	// Logger gets structured logs; nil discards them.
	Logger *slog.Logger
	// Metrics gets the stripe metrics; nil means a private registry.
	Metrics *metrics.Registry
}

// Syncer is the Stripe sync: a webhook handler (ServeHTTP), Reconcile, and the Reconciler component.
type Syncer struct {
	pool    *pgxpool.Pool
	client  *Client
	secrets []string
	opt     Options
	log     *slog.Logger
	m       syncMetrics

	unmapped sync.Map // price sets already logged as mapping to no plan
	fetches  *fetches // concurrent re-fetches of one object, coalesced
}

// New returns a Syncer. Pool and Client are required.
func New(opt Options) (*Syncer, error) {
	if opt.Pool == nil || opt.Client == nil {
		return nil, errors.New("stripesync: Options.Pool and Options.Client are required")
	}
	if opt.Tolerance <= 0 {
		opt.Tolerance = DefaultTolerance
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opt.HandleTimeout <= 0 {
		opt.HandleTimeout = DefaultHandleTimeout
	}
	if opt.ReconcileInterval <= 0 {
		opt.ReconcileInterval = config.DefaultReconcileInterval
	}
	if opt.PageSize <= 0 || opt.PageSize > 100 {
		opt.PageSize = DefaultPageSize
	}
	if opt.ResumeInterval <= 0 {
		opt.ResumeInterval = DefaultResumeInterval
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = metrics.NewRegistry()
	}
	s := &Syncer{
		pool:    opt.Pool,
		client:  opt.Client,
		secrets: opt.WebhookSecrets,
		opt:     opt,
		log:     opt.Logger,
		m:       newSyncMetrics(opt.Metrics),
	}
	s.fetches = newFetches(func() { s.m.shared.With().Inc() })
	prev := opt.Client.opt.OnError
	opt.Client.opt.OnError = func(op string, err error) {
		s.m.apiErrors.With(op, errorClass(err)).Inc()
		if prev != nil {
			prev(op, err)
		}
	}
	return s, nil
}

// FromConfig builds the Syncer of `tollgate serve` and `tollgate sync` from tollgate.yaml and the environment
// (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, STRIPE_API_BASE). It returns ErrNoKey when STRIPE_SECRET_KEY is
// not set.
func FromConfig(cfg *config.Config, env config.Env, pool *pgxpool.Pool, log *slog.Logger, reg *metrics.Registry) (*Syncer, error) {
	if env.StripeSecretKey == "" {
		return nil, ErrNoKey
	}
	client := NewClient(ClientOptions{
		Key:           env.StripeSecretKey,
		APIBase:       env.StripeAPIBase,
		RatePerSecond: cfg.Stripe.RatePerSecond,
	})
	return New(Options{
		Pool:              pool,
		Client:            client,
		WebhookSecrets:    SplitSecrets(env.StripeWebhookSecret),
		ReconcileInterval: cfg.Stripe.ReconcileInterval,
		Logger:            log,
		Metrics:           reg,
	})
}

// Client is the Syncer's Stripe client: its rate budget, shared with whatever else calls Stripe (upgrade links).
func (s *Syncer) Client() *Client { return s.client }

// ErrNoKey says STRIPE_SECRET_KEY is not set: there is no Stripe sync.
var ErrNoKey = errors.New("STRIPE_SECRET_KEY is not set")

// SplitSecrets splits STRIPE_WEBHOOK_SECRET: several secrets separated by commas while one is rolled.
func SplitSecrets(s string) []string {
	var out []string
	for _, part := range strings.Split(s, webhookSecretSplitter) {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// noteStored logs what a stored subscription means when it needs an operator's eye: prices no plan names
// (once per set of prices), and subscriptions that belong to nobody yet.
func (s *Syncer) noteStored(sub Subscription, st Stored) {
	if st.Plan == "" && len(sub.PriceIDs) > 0 {
		key := strings.Join(sub.PriceIDs, ",") + "|" + strings.Join(sub.ProductIDs, ",")
		if _, seen := s.unmapped.LoadOrStore(key, true); !seen {
			s.log.Warn("stripe prices map to no plan: the subscription counts as the default plan",
				"subscription", sub.ID, "prices", sub.PriceIDs, "products", sub.ProductIDs,
				"hint", "name a price in a plan's stripe_prices (or its product in stripe_products) in tollgate.yaml")
		}
		s.m.unmappedPrices.With().Inc()
	}
	if st.Customer == "" {
		s.log.Debug("stripe subscription belongs to no tollgate customer yet", "subscription", sub.ID,
			"stripe_customer", sub.Customer)
	}
}

type syncMetrics struct {
	received, applied, duplicate, ignored *metrics.CounterVec // by event type
	rejected                              *metrics.CounterVec // by reason
	failed                                *metrics.CounterVec // by event type and stage
	lag                                   *metrics.HistogramVec
	apiErrors                             *metrics.CounterVec // by op and HTTP status
	runs                                  *metrics.CounterVec // by result
	runSubscriptions                      *metrics.CounterVec
	runDuration                           *metrics.HistogramVec
	lastSuccess                           *metrics.GaugeVec
	unmappedPrices                        *metrics.CounterVec
	shared                                *metrics.CounterVec
	resumes                               *metrics.CounterVec
	topupsGranted, topupsUnmapped         *metrics.CounterVec
}

func newSyncMetrics(r *metrics.Registry) syncMetrics {
	return syncMetrics{
		received: r.Counter("tollgate_stripe_events_received_total",
			"Stripe webhook events with a valid signature, by type.", "type"),
		applied: r.Counter("tollgate_stripe_events_applied_total",
			"Stripe webhook events whose re-fetched objects were stored, by type.", "type"),
		duplicate: r.Counter("tollgate_stripe_events_duplicate_total",
			"Stripe webhook events recorded before (redeliveries), answered 200 and ignored, by type.", "type"),
		ignored: r.Counter("tollgate_stripe_events_ignored_total",
			"Stripe webhook events of types tollgate does not act on, answered 200, by type.", "type"),
		rejected: r.Counter("tollgate_stripe_events_rejected_total",
			"Stripe webhook requests rejected before any work (missing, malformed, mismatch, too_old, too_new, too_large, bad_json, bad_id, bad_object).", "reason"),
		failed: r.Counter("tollgate_stripe_events_failed_total",
			"Stripe webhook events answered non-2xx so that Stripe retries them, by type and stage (stripe, database).", "type", "stage"),
		lag: r.Histogram("tollgate_stripe_event_lag_seconds",
			"Seconds from a Stripe event's creation to its delivery.",
			[]float64{0.5, 1, 2, 5, 15, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600, 3 * 24 * 3600}),
		apiErrors: r.Counter("tollgate_stripe_api_errors_total",
			"Failed Stripe API requests (each attempt), by operation and HTTP status (network: no answer).", "op", "code"),
		runs: r.Counter("tollgate_stripe_reconcile_runs_total",
			"Reconcile runs by result (ok, error, locked: another replica was reconciling).", "result"),
		runSubscriptions: r.Counter("tollgate_stripe_reconcile_subscriptions_total",
			"Subscriptions stored by reconcile runs."),
		runDuration: r.Histogram("tollgate_stripe_reconcile_duration_seconds",
			"Duration of reconcile runs that listed every subscription.",
			[]float64{1, 5, 15, 60, 300, 900, 3600}),
		lastSuccess: r.Gauge("tollgate_stripe_reconcile_last_success_timestamp_seconds",
			"Unix time of the end of this replica's last complete reconcile run."),
		unmappedPrices: r.Counter("tollgate_stripe_unmapped_subscriptions_total",
			"Subscriptions stored whose prices and products no plan names (they count as the default plan)."),
		shared: r.Counter("tollgate_stripe_fetches_shared_total",
			"Webhook re-fetches that shared a fetch of the same object with another delivery instead of calling Stripe."),
		resumes: r.Counter("tollgate_stripe_pause_resumes_total",
			"Subscriptions re-fetched because their paused collection was due to resume."),
		topupsGranted: r.Counter("tollgate_stripe_topups_granted_total",
			"Top-up packs granted for paid Checkout Sessions and invoices (once per Stripe object and pack)."),
		topupsUnmapped: r.Counter("tollgate_stripe_topups_unmapped_total",
			"Paid purchases of top-up packs whose Stripe customer belongs to no tollgate customer yet: they wait in tollgate.topup_purchases."),
	}
}
