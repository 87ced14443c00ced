// Package mailer sends upgrade-prompt emails from the outbox (tollgate.emails) inside `tollgate serve`.
//
// A limit event commits with a NOTIFY on tollgate_events. The mailer's listener, on a connection of its own,
// wakes up, turns new events into outbox rows (tollgate.outbox_collect) and wakes the senders, which claim rows
// with FOR UPDATE SKIP LOCKED (tollgate.outbox_claim), render them, record the hand-off with the rendering
// (tollgate.outbox_begin), hand them to the provider and record the outcome (tollgate.outbox_sent /
// tollgate.outbox_failed). A lost connection is re-established with backoff and the outbox drained again, and
// a poll covers a listener that is silently gone. Any number of replicas may run: each row is claimed by one.
//
// What is guaranteed for each provider, through crashes and retries, is in docs/emails.md.
package mailer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/metrics"
	"github.com/tollgate/tollgate/sidecar/upgrade"
)

// Channel is the NOTIFY channel of limit events (tollgate._emit).
const Channel = "tollgate_events"

// Defaults of Options.
const (
	DefaultSenders     = 2
	DefaultStaleClaim  = 5 * time.Minute
	DefaultSendTimeout = 20 * time.Second // under the sidecar's 30 s shutdown timeout
	DefaultBackoffBase = 5 * time.Second
	DefaultBackoffMax  = time.Hour
	collectBatch       = 500
)

// Options configure a Mailer. Pool, Provider and Templates are required; zero values elsewhere mean the
// defaults of internal/config and of this package.
type Options struct {
	// Pool connects as a member of tollgate_sidecar. The listener opens a connection of its own with the
	// pool's settings.
	Pool      *pgxpool.Pool
	Provider  Provider
	Templates *Templates
	// From is the sender, as in "Acme <billing@acme.test>".
	From       string
	UpgradeURL string
	// Links mints each upgrade prompt's signed upgrade link (its .UpgradeURL); nil means links are off and the
	// email links to UpgradeURL.
	Links *upgrade.Minter
	// RatePerSecond caps the emails this mailer hands to the provider per second (each replica has its own).
	RatePerSecond float64
	// MaxAttempts is how many attempts an email gets before it is dead.
	MaxAttempts int
	// PollInterval is how often the outbox is drained when no notification comes; the listener's connection is
	// checked as often.
	PollInterval time.Duration
	// Senders is how many emails this mailer hands over at once.
	Senders int
	// StaleClaim is how long a claim may last before other workers take the row over, even though its worker
	// still looks alive. It must be longer than SendTimeout.
	StaleClaim time.Duration
	// SendTimeout bounds one hand-off to the provider.
	SendTimeout time.Duration
	// BackoffBase and BackoffMax shape the exponential backoff between attempts.
	BackoffBase, BackoffMax time.Duration
	// Worker names this mailer in tollgate.emails.claimed_by; "" means host-pid-random. Unique per process.
	Worker string
	// Metrics receives the mailer's metrics; nil means none are exported.
	Metrics *metrics.Registry
	Logger  *slog.Logger
}

// Mailer is the outbox worker: a sidecar component (Name, Run, Ready).
type Mailer struct {
	opts      Options
	outbox    outbox
	pace      *pacer
	backoff   backoff
	log       *slog.Logger
	m         mailerMetrics
	collectCh chan struct{}
	wakeCh    chan struct{}

	up      atomic.Bool
	lastErr atomic.Pointer[error]
	started atomic.Bool

	// hook, when set (by tests), is called at stages of an email: "claimed", "handing-off" and "handed-off".
	hook func(stage string, id int64)
}

// New checks opts and returns a Mailer; Run starts it.
func New(opts Options) (*Mailer, error) {
	if opts.Pool == nil || opts.Provider == nil || opts.Templates == nil {
		return nil, errors.New("mailer: Pool, Provider and Templates are required")
	}
	if opts.RatePerSecond <= 0 {
		opts.RatePerSecond = config.DefaultEmailRatePerSecond
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = config.DefaultEmailMaxAttempts
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = config.DefaultPollInterval
	}
	if opts.Senders <= 0 {
		opts.Senders = DefaultSenders
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = DefaultSendTimeout
	}
	if opts.StaleClaim <= 0 {
		opts.StaleClaim = DefaultStaleClaim
	}
	if opts.StaleClaim <= opts.SendTimeout {
		return nil, fmt.Errorf("mailer: StaleClaim (%s) must be longer than SendTimeout (%s)", opts.StaleClaim, opts.SendTimeout)
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultBackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.Worker == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		opts.Worker = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Mailer{
		opts:      opts,
		outbox:    outbox{opts.Pool},
		pace:      newPacer(opts.RatePerSecond),
		backoff:   backoff{base: opts.BackoffBase, max: opts.BackoffMax},
		log:       opts.Logger.With("component", "mailer", "worker", opts.Worker),
		collectCh: make(chan struct{}, 1),
		wakeCh:    make(chan struct{}, opts.Senders),
	}
	m.m = newMailerMetrics(opts.Metrics, m)
	return m, nil
}

// FromConfig builds the Mailer of `tollgate serve` from tollgate.yaml and the environment: the provider
// (RESEND_API_KEY and RESEND_BASE_URL for resend, SMTP_URL for smtp, nothing for log, which prints to
// stdout) and the templates, checking that every template a feature names exists and renders. Every mistake
// is reported here, at start-up.
func FromConfig(pool *pgxpool.Pool, cfg *config.Config, env config.Env, reg *metrics.Registry, logger *slog.Logger) (*Mailer, error) {
	opts, err := OptionsFromConfig(pool, cfg, env, reg, logger)
	if err != nil {
		return nil, err
	}
	return New(opts)
}

// OptionsFromConfig is what FromConfig passes to New, for callers that change a part first (tollgate demo
// prints the emails into its own output).
func OptionsFromConfig(pool *pgxpool.Pool, cfg *config.Config, env config.Env, reg *metrics.Registry, logger *slog.Logger) (Options, error) {
	provider, err := NewProvider(cfg.Email.Provider, env, os.Getenv("RESEND_BASE_URL"))
	if err != nil {
		return Options{}, err
	}
	tpl, err := TemplatesFor(cfg)
	if err != nil {
		return Options{}, err
	}
	signer, err := upgrade.SignerFromConfig(cfg, env)
	if err != nil {
		return Options{}, err
	}
	var links *upgrade.Minter
	if signer != nil {
		links = &upgrade.Minter{Signer: signer, BaseURL: cfg.UpgradeLinks.PublicURL, TTL: cfg.UpgradeLinks.Expires}
	}
	return Options{
		Links:         links,
		Pool:          pool,
		Provider:      provider,
		Templates:     tpl,
		From:          cfg.Email.From,
		UpgradeURL:    cfg.Email.UpgradeURL,
		RatePerSecond: cfg.Email.RatePerSecond,
		MaxAttempts:   cfg.Email.MaxAttempts,
		PollInterval:  cfg.Sidecar.PollInterval,
		Metrics:       reg,
		Logger:        logger,
	}, nil
}

// NewProvider returns the provider named in email.provider.
func NewProvider(name string, env config.Env, resendBaseURL string) (Provider, error) {
	switch name {
	case "resend":
		return NewResendProvider(env.ResendAPIKey, resendBaseURL, 0)
	case "smtp":
		return NewSMTPProvider(env.SMTPURL, 0)
	case "log", "":
		return NewLogProvider(os.Stdout), nil
	}
	return nil, fmt.Errorf("unknown email provider %q: use resend, smtp or log", name)
}

// TemplatesFor loads the templates of cfg (built-in, overridden by email.templates) and checks that each
// feature's upgrade_prompt, and stripe.trial_prompt, names one.
func TemplatesFor(cfg *config.Config) (*Templates, error) {
	tpl, err := LoadTemplates(cfg.Email.Templates)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, f := range cfg.Features {
		if f.UpgradePrompt != "" && !tpl.Has(f.UpgradePrompt) {
			errs = append(errs, fmt.Errorf("feature %s: upgrade_prompt.email %q is not a template (templates: %v)", f.Name, f.UpgradePrompt, tpl.Names()))
		}
		for _, v := range f.Variants {
			if v.Email != "" && !tpl.Has(v.Email) {
				errs = append(errs, fmt.Errorf("feature %s: upgrade_prompt.variants.%s.email %q is not a template (templates: %v)", f.Name, v.Name, v.Email, tpl.Names()))
			}
		}
	}
	if p := cfg.Stripe.TrialPrompt; p != "" && !tpl.Has(p) {
		errs = append(errs, fmt.Errorf("stripe.trial_prompt.email %q is not a template (templates: %v)", p, tpl.Names()))
	}
	return tpl, errors.Join(errs...)
}

// Name is the component's name.
func (m *Mailer) Name() string { return "mailer" }

// Worker is the name this mailer claims rows under.
func (m *Mailer) Worker() string { return m.opts.Worker }

// Ready fails while the listener is not connected and listening.
func (m *Mailer) Ready(context.Context) error {
	if m.up.Load() {
		return nil
	}
	if p := m.lastErr.Load(); p != nil {
		return fmt.Errorf("mailer: listener is not connected: %w", *p)
	}
	return errors.New("mailer: listener is not connected yet")
}

// Run works the outbox until ctx is done, then lets emails being handed over finish (each bounded by
// SendTimeout) and returns nil. It may be called once.
func (m *Mailer) Run(ctx context.Context) error {
	if m.started.Swap(true) {
		return errors.New("mailer: Run called twice")
	}
	var wg sync.WaitGroup
	wg.Go(func() { m.listen(ctx) })
	wg.Go(func() { m.collector(ctx) })
	for range m.opts.Senders {
		wg.Go(func() { m.sender(ctx) })
	}
	// the fallback poll, and a first drain at start
	m.kick()
	t := time.NewTicker(m.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
			m.kick()
		}
	}
}

// kick asks the collector to collect new events and then wake the senders.
func (m *Mailer) kick() {
	select {
	case m.collectCh <- struct{}{}:
	default:
	}
}

// wake wakes every sender.
func (m *Mailer) wake() {
	for range m.opts.Senders {
		select {
		case m.wakeCh <- struct{}{}:
		default:
			return
		}
	}
}

// listen keeps a connection that LISTENs on Channel and holds this worker's liveness lock, reconnecting with
// backoff and jitter after any failure, and kicks the collector on every notification and (re)connect.
func (m *Mailer) listen(ctx context.Context) {
	// reconnect at least as often as the poll runs, between once a second and every 30 s
	retry := backoff{base: 100 * time.Millisecond, max: min(max(m.opts.PollInterval, time.Second), 30*time.Second)}
	failures := 0
	for ctx.Err() == nil {
		connected, err := m.listenOnce(ctx)
		m.up.Store(false)
		if ctx.Err() != nil {
			return
		}
		m.lastErr.Store(&err)
		m.m.listenerErrors.Inc()
		if connected {
			failures = 0
		}
		failures++
		d := retry.delay(failures)
		m.log.Warn("listener lost its connection; reconnecting", "error", err, "in", d)
		if sleep(ctx, d) != nil {
			return
		}
	}
}

func (m *Mailer) listenOnce(ctx context.Context) (connected bool, err error) {
	cfg := m.opts.Pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "tollgate mailer listener"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, `SELECT tollgate.outbox_register($1)`, m.opts.Worker); err != nil {
		return false, dbError("outbox_register", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return false, err
	}
	m.up.Store(true)
	m.log.Debug("listening", "channel", Channel)
	m.kick() // whatever was notified while we were away
	for {
		wctx, cancel := context.WithTimeout(ctx, m.opts.PollInterval)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			m.kick()
		case ctx.Err() != nil:
			return true, nil
		case wctx.Err() != nil && !conn.IsClosed():
			// quiet for a poll interval: check that the connection still answers
			pctx, cancel := context.WithTimeout(ctx, m.opts.PollInterval)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("listener ping: %w", err)
			}
		default:
			return true, err
		}
	}
}

// collector runs tollgate.outbox_collect when kicked, then wakes the senders.
func (m *Mailer) collector(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.collectCh:
		}
		for {
			n, err := m.outbox.collect(ctx, collectBatch)
			if err != nil {
				if ctx.Err() == nil {
					m.log.Error("collecting events failed", "error", err)
				}
				break
			}
			if n < collectBatch {
				break
			}
		}
		m.wake()
	}
}

// sender claims and sends emails one at a time while there are any due, at the paced rate.
func (m *Mailer) sender(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wakeCh:
		}
		for {
			if m.pace.wait(ctx) != nil {
				return
			}
			claims, err := m.outbox.claim(ctx, m.opts.Worker, 1, m.opts.StaleClaim)
			if err != nil {
				if ctx.Err() == nil {
					m.log.Error("claiming emails failed", "error", err)
				}
				break
			}
			if len(claims) == 0 {
				break
			}
			for i := range claims {
				m.process(ctx, &claims[i])
			}
		}
	}
}

// process sends one claimed email and records the outcome. Once claimed, an email is seen through even when
// ctx ends (shutdown), each step bounded by its own timeout, so that a clean stop leaves no claim behind.
func (m *Mailer) process(ctx context.Context, c *claim) {
	ctx = context.WithoutCancel(ctx)
	provider := m.opts.Provider
	log := m.log.With("email", c.ID, "attempt", c.Attempt, "customer", c.Customer, "feature", c.Feature)
	m.stage("claimed", c.ID)

	if c.Interrupted && !(provider.Idempotent() && c.LastProvider != nil && *c.LastProvider == provider.Name()) {
		last := "the provider"
		if c.LastProvider != nil {
			last = *c.LastProvider
		}
		m.fail(ctx, log, c, &SendError{Permanent: true, Err: fmt.Errorf(
			"delivery unknown: an earlier attempt was cut off while handing the email to %s, which cannot tell a repeat "+
				"from a new email; not sent again, to never send two", last)})
		return
	}

	var r Rendered
	if c.Subject == nil {
		var err error
		if r, err = m.opts.Templates.Render(c.Template, m.data(c)); err != nil {
			m.fail(ctx, log, c, permanent("render: %v", err))
			return
		}
	}
	dbctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	to, stored, sender, ok, err := m.outbox.begin(dbctx, c, provider.Name(), m.opts.From, r)
	cancel()
	if err != nil {
		m.fail(ctx, log, c, retryable(err))
		return
	}
	if !ok {
		log.Warn("the claim was taken over by another worker; not sending")
		return
	}
	msg := &Message{
		ID:             c.ID,
		IdempotencyKey: IdempotencyKey(c.ID, c.Customer, c.Feature, c.periodStart()),
		MessageID:      MessageID(c.ID, c.Customer, c.Feature, c.periodStart(), sender),
		From:           sender,
		To:             to,
		Subject:        stored.Subject,
		Text:           stored.Text,
		HTML:           stored.HTML,
	}
	m.stage("handing-off", c.ID)
	sctx, cancel := context.WithTimeout(ctx, m.opts.SendTimeout)
	providerID, err := provider.Send(sctx, msg)
	cancel()
	m.stage("handed-off", c.ID)
	if err != nil {
		m.fail(ctx, log, c, classify(err))
		return
	}
	var secs *float64
	for try := 1; ; try++ {
		dbctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		secs, err = m.outbox.sent(dbctx, c.ID, provider.Name(), providerID)
		cancel()
		if err == nil {
			break
		}
		if try == 5 {
			// The provider has it. The row stays claimed until this worker is gone or the claim is stale, then
			// another attempt follows: deduplicated by Resend, given up as "delivery unknown" for SMTP.
			log.Error("the email was sent but marking it sent failed", "error", err, "provider_id", providerID)
			return
		}
		time.Sleep(time.Duration(try) * time.Second)
	}
	if secs != nil {
		m.m.handoff.With(provider.Name()).Observe(*secs)
	}
	m.m.sent.With(provider.Name()).Inc() // last: a reader that sees it sees the hand-off time too
	log.Info("email sent", "provider", provider.Name(), "provider_id", providerID)
}

// fail records a failed attempt: retried after backoff (or the provider's Retry-After), or dead.
func (m *Mailer) fail(ctx context.Context, log *slog.Logger, c *claim, se *SendError) {
	provider := m.opts.Provider
	if se.Unknown && !provider.Idempotent() {
		se = &SendError{Permanent: true, Err: fmt.Errorf("delivery unknown: %w; not sent again, to never send two", se.Err)}
	}
	wait := m.backoff.delay(c.Attempt)
	if se.RetryAfter > 0 {
		wait = se.RetryAfter
		m.pace.pauseUntil(time.Now().Add(se.RetryAfter))
	}
	// the provider's message is kept (without secrets, within what outbox_failed stores)
	lastError := upstreamText(se.Error())
	dbctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	status, err := m.outbox.failed(dbctx, c, lastError, wait, se.Permanent, m.opts.MaxAttempts)
	cancel()
	switch {
	case err != nil:
		log.Error("recording a failed attempt failed", "error", err, "attempt_error", lastError)
	case status == "dead":
		m.m.dead.With(provider.Name()).Inc()
		log.Error("email is dead", "error", lastError, "permanent", se.Permanent)
	case status == "failed":
		m.m.failed.With(provider.Name()).Inc()
		log.Warn("email failed; will retry", "error", lastError, "in", wait)
		time.AfterFunc(wait, m.wake)
	default:
		log.Warn("the claim was taken over by another worker", "error", lastError)
	}
}

// maxErrorText bounds what is stored of a provider's message (tollgate.outbox_failed takes up to 10000).
const maxErrorText = 4000

// upstreamText is a provider's message as it may be logged and stored: secrets masked (config.Redact), cut to
// maxErrorText bytes.
func upstreamText(s string) string {
	s = config.Redact(s)
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "..."
	}
	return s
}

func (m *Mailer) data(c *claim) Data {
	d := Data{
		Customer: c.Customer, Feature: c.Feature, Plan: c.Plan, Used: c.Used,
		ResetsAt: c.resetsAt(), UpgradeURL: m.opts.UpgradeURL, PricingURL: m.opts.UpgradeURL,
	}
	if c.Variant != nil {
		d.Variant = *c.Variant
	}
	if m.opts.Links != nil && c.Feature != "" {
		// an upgrade prompt (not the trial prompt, which is of no feature): one click to Stripe Checkout
		p := upgrade.Payload{Customer: c.Customer, Feature: c.Feature, EmailID: c.ID, Variant: d.Variant}
		if c.EventID != nil {
			p.EventID = *c.EventID
		}
		d.UpgradeURL = m.opts.Links.Link(p)
	}
	if c.ToEmail != nil {
		d.Email = *c.ToEmail
	}
	if c.Quota != nil {
		d.Quota = *c.Quota
	}
	if c.Message != nil {
		d.Message = *c.Message
	}
	return d
}

func (m *Mailer) stage(name string, id int64) {
	if m.hook != nil {
		m.hook(name, id)
	}
}
