package upgrade

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/metrics"
	"github.com/tollgate/tollgate/sidecar/stripesync"
)

// Querier is a *pgxpool.Pool connected as a member of tollgate_sidecar.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Stripe is what a click needs of Stripe: *stripesync.Client.
type Stripe interface {
	CreateCheckoutSession(ctx context.Context, p stripesync.CheckoutParams) (stripesync.CheckoutSession, error)
	CreatePortalSession(ctx context.Context, customer, returnURL, idempotencyKey string) (string, error)
}

// DefaultStripeTimeout bounds the Stripe requests of one click: the customer is waiting for the redirect.
const DefaultStripeTimeout = 10 * time.Second

// PortalFreshness is how old a paying customer's link may be to open the Billing Portal. A portal session needs
// no login, so an older link (an email forwarded, a 402 kept for days) goes to PortalReturnURL, the app's own
// account page, instead.
const PortalFreshness = time.Hour

// Options configure a Handler.
type Options struct {
	DB Querier
	// Signer verifies tokens; nil means links are off (every link goes to PricingURL).
	Signer *Signer
	// Stripe creates Checkout and Billing Portal sessions; nil means no Stripe (every link goes to PricingURL).
	Stripe Stripe
	// Prices is each feature's upgrade price (tollgate.yaml features.*.upgrade.price); a feature without one
	// goes to PricingURL.
	Prices map[string]string
	// PricingURL is the static pricing page (email.upgrade_url): the fallback, and the link of the 400 page.
	PricingURL      string
	SuccessURL      string
	CancelURL       string
	PortalReturnURL string
	// StripeTimeout bounds the Stripe requests of a click; 0 means DefaultStripeTimeout.
	StripeTimeout time.Duration
	// LinkTTL is how long links are valid (upgrade_links.expires): a link was minted LinkTTL before it
	// expires. 0 means unknown: no link is fresh enough for the Billing Portal.
	LinkTTL time.Duration
	// Now is the clock tokens expire by; nil means time.Now.
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *metrics.Registry
}

// FromConfig returns the options of tollgate.yaml's upgrade_links, features and email.upgrade_url.
func FromConfig(cfg *config.Config) Options {
	prices := map[string]string{}
	for _, f := range cfg.Features {
		if f.Upgrade != nil {
			prices[f.Name] = f.Upgrade.Price
		}
	}
	u := cfg.UpgradeLinks
	return Options{Prices: prices, PricingURL: cfg.Email.UpgradeURL, SuccessURL: u.SuccessURL, CancelURL: u.CancelURL,
		PortalReturnURL: u.PortalReturnURL, LinkTTL: u.Expires}
}

// Handler is GET /upgrade/{token}.
type Handler struct {
	opt    Options
	log    *slog.Logger
	clicks *metrics.CounterVec
	errs   *metrics.CounterVec
}

// NewHandler returns the handler; DB is required.
func NewHandler(opt Options) (*Handler, error) {
	if opt.DB == nil {
		return nil, errors.New("upgrade: Options.DB is required")
	}
	if opt.StripeTimeout <= 0 {
		opt.StripeTimeout = DefaultStripeTimeout
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = metrics.NewRegistry()
	}
	return &Handler{opt: opt, log: opt.Logger.With("component", "upgrade-links"),
		clicks: opt.Metrics.Counter("tollgate_upgrade_link_clicks_total",
			"Requests of upgrade links by where they were sent: checkout, portal, fallback (the static upgrade_url), "+
				"invalid (forged or tampered: 400), expired (400), off (links are off: the static upgrade_url).", "result"),
		errs: opt.Metrics.Counter("tollgate_upgrade_link_errors_total",
			"Clicks that fell back to the static upgrade_url because something failed, by stage (database, stripe).", "stage"),
	}, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer") // the token stays out of Stripe's and the pricing page's logs
	hd.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h.opt.Signer == nil {
		h.clicks.With("off").Inc()
		h.redirect(w, r, h.opt.PricingURL)
		return
	}
	p, signature, err := h.opt.Signer.Verify(r.PathValue("token"), h.opt.Now())
	if err != nil {
		result := "invalid"
		if errors.Is(err, ErrExpired) {
			result = "expired"
		}
		h.clicks.With(result).Inc()
		h.log.Info("upgrade link refused", "reason", result) // never the token
		h.invalid(w, r, result == "expired")
		return
	}
	if r.Method == http.MethodHead {
		// link checkers and mail scanners: nothing is recorded or created
		h.redirect(w, r, h.opt.PricingURL)
		return
	}
	log := h.log.With("customer", p.Customer, "feature", p.Feature, "variant", p.Variant)
	target, result := h.click(r.Context(), log, p, signature)
	h.clicks.With(result).Inc()
	h.redirect(w, r, target)
}

// click records the click and decides where it goes: a Checkout Session, the Billing Portal, or the static page.
func (h *Handler) click(ctx context.Context, log *slog.Logger, p Payload, signature string) (string, string) {
	ctx = context.WithoutCancel(ctx) // a customer who gives up still leaves a consistent record
	dbctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var c struct {
		id                  int64
		repeated, paying    bool
		plan, stripe, email *string
	}
	err := h.opt.DB.QueryRow(dbctx, `SELECT click_id, repeated, plan, paying, stripe_customer, email
		FROM tollgate.record_click($1, $2, $3, $4, $5, $6)`,
		p.Customer, p.Feature, nullID(p.EventID), nullID(p.EmailID), nullText(p.Variant), signature).
		Scan(&c.id, &c.repeated, &c.plan, &c.paying, &c.stripe, &c.email)
	if err != nil {
		h.errs.With("database").Inc()
		log.Error("recording an upgrade-link click failed; sending the customer to the pricing page", "err", err)
		return h.opt.PricingURL, "fallback"
	}
	log = log.With("click", c.id)
	fallback := func(why string) (string, string) {
		log.Info("upgrade link: the static pricing page", "why", why)
		h.recordTarget(dbctx, log, c.id, "fallback", "")
		return h.opt.PricingURL, "fallback"
	}
	if h.opt.Stripe == nil {
		return fallback("no Stripe (STRIPE_SECRET_KEY is not set)")
	}
	sctx, scancel := context.WithTimeout(ctx, h.opt.StripeTimeout)
	defer scancel()
	idem := "tollgate-click-" + strconv.FormatInt(c.id, 10)
	if c.paying {
		if c.stripe == nil {
			return fallback("a paying customer without a known Stripe customer")
		}
		if minted := p.Expires.Add(-h.opt.LinkTTL); h.opt.LinkTTL <= 0 || h.opt.Now().Sub(minted) > PortalFreshness {
			log.Info("upgrade link: a paying customer's link older than an hour goes to the account page, not the Billing Portal (which needs no login)")
			h.recordTarget(dbctx, log, c.id, "fallback", "")
			return h.opt.PortalReturnURL, "fallback"
		}
		url, err := h.opt.Stripe.CreatePortalSession(sctx, *c.stripe, h.opt.PortalReturnURL, idem+"-portal")
		if err != nil {
			h.errs.With("stripe").Inc()
			log.Error("creating a Billing Portal session failed", "err", err)
			return fallback("Stripe failed")
		}
		h.recordTarget(dbctx, log, c.id, "portal", "")
		return url, "portal"
	}
	price := h.opt.Prices[p.Feature]
	if price == "" {
		return fallback("the feature names no upgrade: { plan, price }")
	}
	params := stripesync.CheckoutParams{
		Price: price, ClientReferenceID: p.Customer, SuccessURL: h.opt.SuccessURL, CancelURL: h.opt.CancelURL,
		IdempotencyKey: idem,
		Metadata: map[string]string{
			"tollgate_click": strconv.FormatInt(c.id, 10), "tollgate_customer": p.Customer, "tollgate_feature": p.Feature,
		},
	}
	if c.stripe != nil {
		params.Customer = *c.stripe
	} else if c.email != nil {
		params.CustomerEmail = *c.email
	}
	if p.EventID > 0 {
		params.Metadata["tollgate_event"] = strconv.FormatInt(p.EventID, 10)
	}
	if p.EmailID > 0 {
		params.Metadata["tollgate_email"] = strconv.FormatInt(p.EmailID, 10)
	}
	if p.Variant != "" {
		params.Metadata["tollgate_variant"] = p.Variant
	}
	cs, err := h.opt.Stripe.CreateCheckoutSession(sctx, params)
	if err != nil {
		h.errs.With("stripe").Inc()
		log.Error("creating a Checkout Session failed", "err", err)
		return fallback("Stripe failed")
	}
	h.recordTarget(dbctx, log, c.id, "checkout", cs.ID)
	log.Info("upgrade link: Stripe Checkout", "session", cs.ID, "repeated", c.repeated)
	return cs.URL, "checkout"
}

// recordTarget records where a click led. A failure is logged only: the session's metadata names the click, so
// its completion still finds it.
func (h *Handler) recordTarget(ctx context.Context, log *slog.Logger, click int64, target, session string) {
	var ok bool
	err := h.opt.DB.QueryRow(ctx, `SELECT tollgate.record_click_target($1, $2, $3)`, click, target, nullText(session)).Scan(&ok)
	if err != nil {
		h.errs.With("database").Inc()
		log.Error("recording where an upgrade-link click led failed", "err", err, "target", target)
	}
}

func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, url string) {
	http.Redirect(w, r, url, http.StatusSeeOther)
}

var invalidPage = template.Must(template.New("invalid").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>This upgrade link does not work</title>
<style>body { font: 16px/1.5 system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem; color: #222; }
a { color: #2d6cdf; }</style></head>
<body><h1>This upgrade link does not work</h1>
<p>{{if .Expired}}It has expired.{{else}}It is not a link we made, or it was changed on the way.{{end}}</p>
{{if .PricingURL}}<p>See the plans on <a href="{{.PricingURL}}">the pricing page</a>.</p>{{end}}
</body></html>
`))

// invalid answers a forged, tampered or expired token: 400 with a link to the pricing page; nothing is written.
func (h *Handler) invalid(w http.ResponseWriter, r *http.Request, expired bool) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(http.StatusBadRequest)
	if r.Method == http.MethodHead {
		return
	}
	if err := invalidPage.Execute(w, struct {
		Expired    bool
		PricingURL string
	}{expired, h.opt.PricingURL}); err != nil {
		h.log.Error("rendering the invalid-link page", "err", err)
	}
}

func nullID(n int64) *int64 {
	if n <= 0 {
		return nil
	}
	return &n
}

func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Configure writes the link key, the public URL and the links' lifetime into the database
// (tollgate.configure_upgrade_links), or turns links off when signer is nil (tollgate.disable_upgrade_links).
func Configure(ctx context.Context, db Querier, signer *Signer, publicURL string, expires time.Duration) error {
	if signer == nil {
		var was bool
		if err := db.QueryRow(ctx, `SELECT tollgate.disable_upgrade_links()`).Scan(&was); err != nil {
			return fmt.Errorf("tollgate.disable_upgrade_links: %w", err)
		}
		return nil
	}
	var one int
	if err := db.QueryRow(ctx, `SELECT 1 FROM tollgate.configure_upgrade_links($1, $2, $3)`, signer.KeyHex(), publicURL,
		expires).Scan(&one); err != nil {
		return fmt.Errorf("tollgate.configure_upgrade_links: %w", err)
	}
	return nil
}
