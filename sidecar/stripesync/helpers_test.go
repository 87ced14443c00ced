package stripesync_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/metrics"
	"github.com/tollgate/tollgate/sidecar/stripesync"
	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	secret    = "whsec_test_current"
	oldSecret = "whsec_test_previous"
	// apiVersion is what stripe-go v76 pins; newAPIVersion has periods on subscription items.
	apiVersion    = "2023-10-16"
	newAPIVersion = "2025-03-31.basil"
)

// testBundle is one test's database, fake Stripe and Syncer (connected as the sidecar role).
type testBundle struct {
	db      *pgtest.DB
	owner   *pgxpool.Pool
	sidecar *pgxpool.Pool
	fake    *stripetest.Fake
	reg     *metrics.Registry
	syncer  *stripesync.Syncer
	srv     *httptest.Server // the webhook handler
}

type setupOptions struct {
	apiBase     string // "" = the fake
	apiVersion  string // the shape the fake renders; "" = 2023-10-16
	rate        float64
	pageSize    int
	minBackoff  time.Duration
	maxBackoff  time.Duration // 0 = 2s
	maxAttempts int
	interval    time.Duration
	onRun       func(stripesync.Result, error)
	logger      *slog.Logger
	clock       stripesync.Clock
}

// setup gives a test plans free (default), pro (price_pro_monthly, price_pro_yearly; rank 10) and team
// (product prod_team; rank 20), a fake Stripe, and a Syncer whose webhook handler listens on srv.
func setup(t testing.TB, opts ...setupOptions) *testBundle {
	t.Helper()
	var o setupOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	b := &testBundle{db: pgtest.NewDB(t), fake: stripetest.NewFake(t), reg: metrics.NewRegistry()}
	b.owner = b.db.Pool(t)
	b.exec(t, `SELECT tollgate.define_plan('free', true)`)
	b.exec(t, `SELECT tollgate.define_plan('pro', false, '{price_pro_monthly,price_pro_yearly}', 10)`)
	b.exec(t, `SELECT tollgate.define_plan('team', false, '{}', 20, '{prod_team}')`)

	pool, err := pgxpool.New(context.Background(), b.db.SidecarURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b.sidecar = pool

	base := o.apiBase
	if base == "" {
		base = b.fake.URL
	}
	if o.rate == 0 {
		o.rate = 1000
	}
	if o.minBackoff == 0 {
		o.minBackoff = time.Millisecond
	}
	if o.maxBackoff == 0 {
		o.maxBackoff = 2 * time.Second
	}
	if o.apiVersion != "" {
		b.fake.SetAPIVersion(o.apiVersion)
	}
	client := stripesync.NewClient(stripesync.ClientOptions{
		Key: stripetest.Key, APIBase: base, RatePerSecond: o.rate, MinBackoff: o.minBackoff, MaxBackoff: o.maxBackoff,
		MaxAttempts: o.maxAttempts, Clock: o.clock,
	})
	b.syncer, err = stripesync.New(stripesync.Options{
		Pool: pool, Client: client, WebhookSecrets: []string{secret, oldSecret}, PageSize: o.pageSize, Metrics: b.reg,
		ReconcileInterval: o.interval, OnReconcile: o.onRun, Logger: o.logger,
	})
	require.NoError(t, err)
	b.srv = httptest.NewServer(b.syncer)
	t.Cleanup(b.srv.Close)
	return b
}

func (b *testBundle) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := b.owner.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

func (b *testBundle) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.owner.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// plan is the customer's current plan as consume would see it ("" = unknown customer).
func (b *testBundle) plan(t testing.TB, customer string) string {
	t.Helper()
	var plan *string
	err := b.owner.QueryRow(context.Background(),
		`SELECT coalesce(c.plan, (SELECT p.plan FROM tollgate.plans p WHERE p.is_default))
		   FROM tollgate.customers c WHERE c.customer = $1`, customer).Scan(&plan)
	if err != nil {
		return ""
	}
	return *plan
}

// consume calls tollgate.consume(customer, 'api_calls') as the app would, and says whether it was allowed.
func (b *testBundle) consume(t testing.TB, customer string) bool {
	t.Helper()
	var allowed bool
	require.NoError(t, b.owner.QueryRow(context.Background(),
		`SELECT allowed FROM tollgate.consume($1, 'api_calls')`, customer).Scan(&allowed))
	return allowed
}

// rowsEverywhere counts the rows of every table the sync writes.
func (b *testBundle) rowsEverywhere(t testing.TB) int {
	t.Helper()
	return b.count(t, `SELECT (SELECT count(*) FROM tollgate.stripe_events) + (SELECT count(*) FROM tollgate.subscriptions)
		+ (SELECT count(*) FROM tollgate.customers) + (SELECT count(*) FROM tollgate.stripe_links)
		+ (SELECT count(*) FROM tollgate.sync_runs)`)
}

// post delivers body to the webhook with the given Stripe-Signature header ("" = none).
func (b *testBundle) post(t testing.TB, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL, bytes.NewReader(body))
	require.NoError(t, err)
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// deliver signs an event with the current secret and delivers it.
func (b *testBundle) deliver(t testing.TB, id, typ string, object map[string]any) int {
	t.Helper()
	body := stripetest.Event(id, typ, apiVersion, time.Now(), object)
	return b.post(t, body, stripetest.Sign(body, secret, time.Now()))
}

// deliverFrom is deliver for an event of a connected account ("" = the platform's) rendered with version.
func (b *testBundle) deliverFrom(t testing.TB, account, version, id, typ string, object map[string]any) int {
	t.Helper()
	body := stripetest.ConnectEvent(id, typ, version, account, time.Now(), object)
	return b.post(t, body, stripetest.Sign(body, secret, time.Now()))
}

// shapes runs fn as a subtest for each API shape the fake renders: 2023-10-16 (stripe-go v76's pin) and the
// newest (periods on subscription items), each with its own database, fake and Syncer.
func shapes(t *testing.T, fn func(t *testing.T, b *testBundle, version string), opts ...setupOptions) {
	t.Helper()
	for _, version := range []string{stripetest.APIVersion2023, stripetest.APIVersionNew} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			var o setupOptions
			if len(opts) > 0 {
				o = opts[0]
			}
			o.apiVersion = version
			fn(t, setup(t, o), version)
		})
	}
}

// metricValue is the value of a metric line's sample (0 when the line is absent).
func (b *testBundle) metricValue(t testing.TB, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	b.reg.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

// waitFor waits until cond holds, failing the test after 20 seconds (a condition with a deadline).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timeout waiting for %s", what)
		time.Sleep(2 * time.Millisecond)
	}
}

func (b *testBundle) metric(t testing.TB, line string) {
	t.Helper()
	rec := httptest.NewRecorder()
	b.reg.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Contains(t, strings.Split(rec.Body.String(), "\n"), line)
}

func subObject(id string) map[string]any { return map[string]any{"id": id, "object": "subscription"} }

func requireCode(t testing.TB, err error, code string, what ...any) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want SQLSTATE %s, got %v %v", code, err, what)
	require.Equal(t, code, pgErr.Code, "error: %v %v", err, what)
}
