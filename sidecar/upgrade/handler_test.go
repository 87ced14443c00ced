package upgrade_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/metrics"
	"github.com/tollgate/tollgate/sidecar/stripesync"
	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
	"github.com/tollgate/tollgate/sidecar/upgrade"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	secret        = "test-link-secret-0123456789"
	webhookSecret = "whsec_links"
	pricing       = "https://acme.test/pricing"
	publicURL     = "https://billing.acme.test"
)

// bundle is a database with plans free and pro (price_pro_monthly), a feature api_calls (1 a month on free) whose
// upgrade is pro, a fake Stripe, the Stripe sync's webhook, and the upgrade-link handler, all as the sidecar.
type bundle struct {
	db      *pgtest.DB
	owner   *pgxpool.Pool
	sidecar *pgxpool.Pool
	fake    *stripetest.Fake
	signer  *upgrade.Signer
	reg     *metrics.Registry
	links   *httptest.Server
	webhook *httptest.Server
	opt     upgrade.Options
}

type setupOpts struct {
	noStripe bool
	apiBase  string
}

func setup(t *testing.T, o ...setupOpts) *bundle {
	t.Helper()
	var so setupOpts
	if len(o) > 0 {
		so = o[0]
	}
	b := &bundle{db: pgtest.NewDB(t), fake: stripetest.NewFake(t), reg: metrics.NewRegistry()}
	b.owner = b.db.Pool(t)
	ctx := context.Background()
	for _, stmt := range []string{
		`SELECT tollgate.define_plan('free', true)`,
		`SELECT tollgate.define_plan('pro', false, '{price_pro_monthly}', 10)`,
		`SELECT tollgate.define_feature('api_calls', 'month', message => 'Upgrade to continue.')`,
		`SELECT tollgate.set_limit('free', 'api_calls', 1)`,
		`SELECT tollgate.set_limit('pro', 'api_calls', NULL)`,
		`SELECT tollgate.define_feature('exports', 'month')`,
		`SELECT tollgate.set_limit('free', 'exports', 0)`,
	} {
		_, err := b.owner.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	var err error
	b.sidecar, err = pgxpool.New(ctx, b.db.SidecarURL)
	require.NoError(t, err)
	t.Cleanup(b.sidecar.Close)
	b.signer, err = upgrade.NewSigner(secret, "")
	require.NoError(t, err)
	require.NoError(t, upgrade.Configure(ctx, b.sidecar, b.signer, publicURL, 30*24*time.Hour))

	base := so.apiBase
	if base == "" {
		base = b.fake.URL
	}
	client := stripesync.NewClient(stripesync.ClientOptions{Key: stripetest.Key, APIBase: base, RatePerSecond: 1000,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxAttempts: 2})
	syncer, err := stripesync.New(stripesync.Options{Pool: b.sidecar, Client: client, WebhookSecrets: []string{webhookSecret}, Metrics: b.reg})
	require.NoError(t, err)
	b.webhook = httptest.NewServer(syncer)
	t.Cleanup(b.webhook.Close)

	b.opt = upgrade.Options{DB: b.sidecar, Signer: b.signer, Prices: map[string]string{"api_calls": "price_pro_monthly"},
		PricingURL: pricing, SuccessURL: "https://acme.test/welcome", CancelURL: pricing,
		PortalReturnURL: "https://acme.test/account", LinkTTL: 30 * 24 * time.Hour, Metrics: b.reg}
	if !so.noStripe {
		b.opt.Stripe = client
	}
	b.serve(t)
	return b
}

func (b *bundle) serve(t *testing.T) {
	t.Helper()
	h, err := upgrade.NewHandler(b.opt)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("GET /upgrade/{token}", h)
	if b.links != nil {
		b.links.Close()
	}
	b.links = httptest.NewServer(mux)
	t.Cleanup(b.links.Close)
}

func (b *bundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.owner.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

func (b *bundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.owner.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// block makes customer hit api_calls' limit as the app does, and returns the link the app's 402 carries.
func (b *bundle) block(t *testing.T, customer string) string {
	t.Helper()
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		_, err := app.Exec(ctx, `SELECT * FROM tollgate.consume($1, 'api_calls')`, customer)
		require.NoError(t, err)
	}
	var link string
	require.NoError(t, app.QueryRow(ctx, `SELECT tollgate.upgrade_link($1, 'api_calls')`, customer).Scan(&link))
	require.True(t, strings.HasPrefix(link, publicURL+"/upgrade/"), link)
	return link
}

// get requests a link's path on the handler without following redirects: the status, Location and body.
func (b *bundle) get(t *testing.T, link string) (int, string, string) {
	t.Helper()
	path := strings.TrimPrefix(link, publicURL)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(b.links.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

func (b *bundle) deliver(t *testing.T, id, typ string, object map[string]any) {
	t.Helper()
	body := stripetest.Event(id, typ, stripetest.APIVersion2023, time.Now(), object)
	req, err := http.NewRequest(http.MethodPost, b.webhook.URL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Stripe-Signature", stripetest.Sign(body, webhookSecret, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, typ)
}

func (b *bundle) metric(t *testing.T, line string) {
	t.Helper()
	rec := httptest.NewRecorder()
	b.reg.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Contains(t, strings.Split(rec.Body.String(), "\n"), line)
}

type conversion struct {
	Click, Email, Event *int64
	Feature, Variant    *string
	PromptedAt          *time.Time
}

func (b *bundle) conversion(t *testing.T, customer string) conversion {
	t.Helper()
	var c conversion
	require.NoError(t, b.owner.QueryRow(context.Background(), `SELECT click_id, email_id, event_id, feature, variant, prompted_at
		FROM tollgate.conversions WHERE customer = $1`, customer).Scan(&c.Click, &c.Email, &c.Event, &c.Feature, &c.Variant, &c.PromptedAt))
	return c
}

// The 402's link opens a Checkout Session for the feature's upgrade with the customer, the prompt and the
// variant; a completed session converts the customer with the click's attribution ("clicked").
func TestClickOpensCheckoutAndTheConversionIsTheClicks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.define_variant('api_calls', 'control', 1)`)
	b.exec(t, `SELECT tollgate.set_customer('alice', 'alice@example.test')`)
	link := b.block(t, "alice")
	var event int64
	var variant string
	require.NoError(t, b.owner.QueryRow(context.Background(), `SELECT id, variant FROM tollgate.events
		WHERE customer = 'alice' AND kind = 'limit_reached'`).Scan(&event, &variant))
	require.Equal(t, "control", variant)

	code, loc, _ := b.get(t, link)
	require.Equal(t, http.StatusSeeOther, code)
	sessions := b.fake.CreatedSessions()
	require.Len(t, sessions, 1)
	cs := sessions[0]
	require.Equal(t, cs.URL, loc)
	require.Equal(t, "subscription", cs.Mode)
	require.Equal(t, []stripetest.Line{{Price: "price_pro_monthly", Quantity: 1}}, cs.Lines)
	require.Equal(t, "alice", cs.ClientReferenceID)
	require.Equal(t, "alice@example.test", cs.CustomerEmail, "no Stripe customer known: the email is prefilled")
	require.Empty(t, cs.Customer)
	require.Equal(t, "https://acme.test/welcome", cs.SuccessURL)
	require.Equal(t, pricing, cs.CancelURL)
	var click int64
	require.NoError(t, b.owner.QueryRow(context.Background(), `SELECT id FROM tollgate.link_clicks
		WHERE customer = 'alice' AND target = 'checkout' AND checkout_session = $1 AND event_id = $2 AND variant = 'control'`,
		cs.ID, event).Scan(&click))
	require.Equal(t, map[string]string{"tollgate_click": strconv.FormatInt(click, 10), "tollgate_customer": "alice",
		"tollgate_feature": "api_calls", "tollgate_event": strconv.FormatInt(event, 10), "tollgate_variant": "control"}, cs.Metadata)
	require.Equal(t, "tollgate-click-"+strconv.FormatInt(click, 10), cs.IdempotencyKey)

	// a second click within the minute: the same click, and the same session (Stripe's idempotency)
	code, loc2, _ := b.get(t, link)
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, loc, loc2)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.link_clicks`))
	require.Len(t, b.fake.CreatedSessions(), 1)
	b.metric(t, `tollgate_upgrade_link_clicks_total{result="checkout"} 2`)

	// the customer pays; Stripe sends checkout.session.completed
	done := b.fake.CompleteCheckoutSession(cs.ID, "cus_alice", "sub_alice", "prod_pro")
	b.deliver(t, "evt_cs", "checkout.session.completed", map[string]any{"id": done.ID, "object": "checkout.session"})
	var plan *string
	require.NoError(t, b.owner.QueryRow(context.Background(), `SELECT plan FROM tollgate.customers WHERE customer = 'alice'`).Scan(&plan))
	require.Equal(t, "pro", *plan)
	conv := b.conversion(t, "alice")
	require.Equal(t, click, *conv.Click, "attributed to the click exactly")
	require.Equal(t, event, *conv.Event)
	require.Equal(t, "api_calls", *conv.Feature)
	require.Equal(t, "control", *conv.Variant)
	require.Nil(t, conv.Email, "the 402's link: no email")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.link_clicks WHERE completed_at IS NOT NULL`))

	// the funnel shows the click between prompted and converted
	var prompted, clicked, attributed int
	require.NoError(t, b.owner.QueryRow(context.Background(), `SELECT prompted, clicked, attributed
		FROM tollgate.funnel(now() - interval '1 day', now() + interval '1 minute') WHERE feature = 'api_calls'`).Scan(&prompted, &clicked, &attributed))
	require.Equal(t, [3]int{1, 1, 1}, [3]int{prompted, clicked, attributed})
}

// The subscription's own event may come before the session's: the conversion is first attributed by time (here
// to the email), and the session's event makes it the click's. A link in an email names the email.
func TestClickAttributionWhenTheSubscriptionEventComesFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('bob', 'bob@example.test', 'cus_bob')`)
	b.block(t, "bob")
	var event int64
	require.NoError(t, b.owner.QueryRow(context.Background(), `SELECT id FROM tollgate.events WHERE customer = 'bob' AND kind = 'limit_reached'`).Scan(&event))
	// the upgrade email went out (the outbox, as the owner: the mailer's work is tested in sidecar/mailer)
	var email int64
	require.NoError(t, b.owner.QueryRow(context.Background(), `INSERT INTO tollgate.emails (event_id, customer, feature, period_start,
		template, status, sent_at) SELECT id, customer, feature, period_start, 'upgrade_prompt', 'sent', now() - interval '1 minute'
		FROM tollgate.events WHERE id = $1 RETURNING id`, event).Scan(&email))
	// its link, as the mailer mints it
	m := upgrade.Minter{Signer: b.signer, BaseURL: publicURL, TTL: time.Hour}
	code, _, _ := b.get(t, m.Link(upgrade.Payload{Customer: "bob", Feature: "api_calls", EventID: event, EmailID: email}))
	require.Equal(t, http.StatusSeeOther, code)
	cs := b.fake.CreatedSessions()[0]
	require.Equal(t, "cus_bob", cs.Customer, "the Stripe customer is known")
	require.Empty(t, cs.CustomerEmail)
	require.Equal(t, strconv.FormatInt(email, 10), cs.Metadata["tollgate_email"])

	done := b.fake.CompleteCheckoutSession(cs.ID, "cus_bob", "sub_bob", "prod_pro")
	b.deliver(t, "evt_sub", "customer.subscription.created", map[string]any{"id": "sub_bob", "object": "subscription"})
	before := b.conversion(t, "bob")
	require.Nil(t, before.Click, "by time, before the session's event")
	require.Equal(t, email, *before.Email)
	b.deliver(t, "evt_cs", "checkout.session.completed", map[string]any{"id": done.ID, "object": "checkout.session"})
	after := b.conversion(t, "bob")
	require.NotNil(t, after.Click, "the session's event makes it the click's")
	require.Equal(t, email, *after.Email)
	require.Equal(t, event, *after.Event)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.conversions`))
	// a redelivery changes nothing
	b.deliver(t, "evt_cs", "checkout.session.completed", map[string]any{"id": done.ID, "object": "checkout.session"})
	require.Equal(t, after, b.conversion(t, "bob"))
}

// Without Stripe, when Checkout fails, and for a feature without an upgrade: 303 to the static pricing page,
// never an error page; the click is recorded with target fallback.
func TestClickFallsBackToThePricingPage(t *testing.T) {
	t.Parallel()
	t.Run("no Stripe", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{noStripe: true})
		code, loc, _ := b.get(t, b.block(t, "alice"))
		require.Equal(t, []any{http.StatusSeeOther, pricing}, []any{code, loc})
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.link_clicks WHERE target = 'fallback'`))
		b.metric(t, `tollgate_upgrade_link_clicks_total{result="fallback"} 1`)
	})
	t.Run("Checkout fails", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.Fail(10, "/v1/checkout/sessions", http.StatusInternalServerError, "")
		code, loc, _ := b.get(t, b.block(t, "alice"))
		require.Equal(t, []any{http.StatusSeeOther, pricing}, []any{code, loc})
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.link_clicks WHERE target = 'fallback'`))
		b.metric(t, `tollgate_upgrade_link_errors_total{stage="stripe"} 1`)
	})
	t.Run("no upgrade for the feature", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := upgrade.Minter{Signer: b.signer, BaseURL: publicURL, TTL: time.Hour}
		code, loc, _ := b.get(t, m.Link(upgrade.Payload{Customer: "alice", Feature: "exports"}))
		require.Equal(t, []any{http.StatusSeeOther, pricing}, []any{code, loc})
		require.Empty(t, b.fake.Requests())
	})
	t.Run("links off", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		link := b.block(t, "alice")
		b.opt.Signer, b.opt.Metrics = nil, nil
		b.serve(t)
		code, loc, _ := b.get(t, link)
		require.Equal(t, []any{http.StatusSeeOther, pricing}, []any{code, loc})
		require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.link_clicks`))
	})
	t.Run("the database is gone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		link := b.block(t, "alice")
		b.sidecar.Close()
		code, loc, _ := b.get(t, link)
		require.Equal(t, []any{http.StatusSeeOther, pricing}, []any{code, loc})
		require.Empty(t, b.fake.Requests())
	})
}

// A paying customer's link goes to the Stripe Billing Portal.
func TestPayingCustomersLinkOpensThePortal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	link := b.block(t, "carol")
	b.exec(t, `SELECT tollgate.set_customer('carol', NULL, 'cus_carol')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_carol", Customer: "cus_carol", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro_monthly", Product: "prod_pro"}}})
	b.deliver(t, "evt_1", "customer.subscription.created", map[string]any{"id": "sub_carol", "object": "subscription"})
	code, loc, _ := b.get(t, link)
	require.Equal(t, http.StatusSeeOther, code)
	portals := b.fake.PortalSessions()
	require.Len(t, portals, 1)
	require.Equal(t, portals[0].URL, loc)
	require.Equal(t, "cus_carol", portals[0].Customer)
	require.Equal(t, "https://acme.test/account", portals[0].ReturnURL)
	require.Empty(t, b.fake.CreatedSessions())
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.link_clicks WHERE target = 'portal'`))

	// a link minted over an hour ago (an email forwarded, a page kept open) goes to the account page: a portal
	// session needs no login
	old := (&upgrade.Minter{Signer: b.signer, BaseURL: publicURL, TTL: 30 * 24 * time.Hour,
		Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}).Link(upgrade.Payload{Customer: "carol", Feature: "api_calls"})
	code, loc, _ = b.get(t, old)
	require.Equal(t, []any{http.StatusSeeOther, "https://acme.test/account"}, []any{code, loc})
	require.Len(t, b.fake.PortalSessions(), 1)
}

// A forged, tampered or expired link: 400 with a link to the pricing page; nothing written, nothing asked of
// Stripe. HEAD (link scanners) writes nothing either.
func TestBadLinksWriteNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	link := b.block(t, "alice")
	tok := strings.TrimPrefix(link, publicURL+"/upgrade/")
	enc, mac, _ := strings.Cut(tok, ".")
	other, err := upgrade.NewSigner("another-secret-0123456789", "")
	require.NoError(t, err)
	expired := (&upgrade.Minter{Signer: b.signer, BaseURL: publicURL, TTL: -time.Minute}).Link(upgrade.Payload{Customer: "alice", Feature: "api_calls"})
	for name, bad := range map[string]string{
		"forged":   (&upgrade.Minter{Signer: other, BaseURL: publicURL, TTL: time.Hour}).Link(upgrade.Payload{Customer: "alice", Feature: "api_calls"}),
		"tampered": publicURL + "/upgrade/" + enc + "A." + mac,
		"garbage":  publicURL + "/upgrade/not-a-token",
		"expired":  expired,
	} {
		code, _, body := b.get(t, bad)
		require.Equal(t, http.StatusBadRequest, code, name)
		require.Contains(t, body, `<a href="`+pricing+`">the pricing page</a>`, name)
	}
	b.metric(t, `tollgate_upgrade_link_clicks_total{result="invalid"} 3`)
	b.metric(t, `tollgate_upgrade_link_clicks_total{result="expired"} 1`)
	req, err := http.NewRequest(http.MethodHead, b.links.URL+strings.TrimPrefix(link, publicURL), nil)
	require.NoError(t, err)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.link_clicks`))
	require.Empty(t, b.fake.Requests())
}

// Against stripe-mock (Stripe's own API description, newest version): the Checkout Session and Billing Portal
// requests tollgate makes are valid requests, and their answers are read.
func TestCheckoutRequestsAgainstStripeMock(t *testing.T) {
	t.Parallel()
	base := stripetest.StripeMock(t)
	client := stripesync.NewClient(stripesync.ClientOptions{Key: stripetest.Key, APIBase: base})
	cs, err := client.CreateCheckoutSession(context.Background(), stripesync.CheckoutParams{
		Price: "price_pro_monthly", ClientReferenceID: "alice", CustomerEmail: "alice@example.test",
		SuccessURL: "https://acme.test/welcome", CancelURL: pricing, IdempotencyKey: "tollgate-click-1",
		Metadata: map[string]string{"tollgate_click": "1", "tollgate_variant": "short"},
	})
	require.NoError(t, err)
	require.Regexp(t, `^cs_`, cs.ID)
	require.Regexp(t, `^https://`, cs.URL)
	cs, err = client.CreateCheckoutSession(context.Background(), stripesync.CheckoutParams{
		Price: "price_pro_monthly", ClientReferenceID: "alice", Customer: "cus_alice", SuccessURL: "https://acme.test/welcome"})
	require.NoError(t, err)
	url, err := client.CreatePortalSession(context.Background(), "cus_alice", "https://acme.test/account", "tollgate-click-2-portal")
	require.NoError(t, err)
	require.Regexp(t, `^https://`, url)
}
