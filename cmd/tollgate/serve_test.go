package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

// lockedBuffer is a bytes.Buffer that goroutines may write to at once (the sidecar's logs).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const serveConfig = `plans:
  free: { default: true }
  pro: { stripe_prices: [price_pro], rank: 10 }
features:
  api_calls: { period: month, limits: { free: 0, pro: unlimited }, upgrade: { plan: pro, price: price_pro } }
email:
  upgrade_url: https://acme.test/pricing
upgrade_links:
  public_url: https://billing.acme.test
stripe:
  reconcile_interval: 1h
  rate_per_second: 50
sidecar:
  listen: "127.0.0.1:0"
`

func TestServeCommand(t *testing.T) {
	t.Parallel()
	db, fake, env := stripeDB(t)
	env["STRIPE_WEBHOOK_SECRET"] = "whsec_new, whsec_old"
	cfgPath := filepath.Join(t.TempDir(), "tollgate.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(serveConfig), 0o600))
	db.Exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro"}}})

	env["TOLLGATE_METRICS_TOKEN"] = "m3trics"
	env["TOLLGATE_LINK_SECRET"] = "serve-link-secret-0123456789"
	db.Exec(t, `SELECT tollgate.define_feature('api_calls', 'month')`)
	db.Exec(t, `SELECT tollgate.set_limit('free', 'api_calls', 0)`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base, private := "http://"+ln.Addr().String(), "http://"+mln.Addr().String()
	var stdout bytes.Buffer
	var stderr lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	exited := make(chan int)
	go func() {
		exited <- serveCmd(ctx, []string{"--config", cfgPath}, &stdout, &stderr, func(k string) string { return env[k] }, ln, mln)
	}()
	withToken := func(url string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer m3trics")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}

	// a webhook signed with the old secret of a roll: re-fetched and applied
	body := stripetest.Event("evt_1", "customer.subscription.created", "2023-10-16", time.Now(),
		map[string]any{"id": "sub_a", "object": "subscription"})
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/stripe", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Stripe-Signature", stripetest.Sign(body, "whsec_old", time.Now()))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "pro", customerPlan(t, db, "alice"))

	var ready struct{ Checks map[string]string }
	require.Eventually(t, func() bool { // the mailer is ready once its LISTEN connection is up
		resp := withToken(private + "/readyz")
		defer resp.Body.Close()
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&ready))
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond, "%v", ready)
	require.Equal(t, map[string]string{"database": "ok", "idempotency-prune": "ok", "mailer": "ok", "stripe-reconcile": "ok",
		"stripe-resume": "ok", "upgrade-links": "ok"}, ready.Checks)

	// upgrade links: the key is in the database (the app's SQL mints the 402's link), and /upgrade/ on
	// sidecar.listen sends the customer to Checkout on (the fake) Stripe
	var link string
	require.NoError(t, db.Conn(t, db.AppURL).QueryRow(ctx, `SELECT tollgate.upgrade_link('bob', 'api_calls')`).Scan(&link))
	path, ok := strings.CutPrefix(link, "https://billing.acme.test")
	require.True(t, ok, link)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(base + path)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Location"), fake.URL+"/pay/cs_"), resp.Header.Get("Location"))
	resp, err = noFollow.Get(base + "/upgrade/forged.token")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// /metrics and /readyz: on the metrics listener only, and only with the token
	for url, want := range map[string]int{base + "/metrics": http.StatusNotFound, base + "/readyz": http.StatusNotFound,
		private + "/metrics": http.StatusUnauthorized, private + "/readyz": http.StatusUnauthorized, base + "/healthz": http.StatusOK} {
		resp, err := http.Get(url)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, url)
	}
	resp = withToken(private + "/metrics")
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, strings.Split(string(metrics), "\n"),
		`tollgate_stripe_events_applied_total{type="customer.subscription.created"} 1`)

	cancel() // SIGTERM
	require.Equal(t, 0, <-exited, stderr.String())
	// every log line is a JSON object
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	require.NotEmpty(t, lines)
	for _, l := range lines {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &rec), l)
		require.Contains(t, rec, "level")
		require.Contains(t, rec, "msg")
	}
}

func TestServeCommandArguments(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	none := func(string) string { return "" }
	require.Equal(t, 2, serveCmd(t.Context(), nil, &stdout, &stderr, none, nil), "no --config")
	require.Equal(t, 2, serveCmd(t.Context(), []string{"--config", "x.yaml", "--log-level", "loud"}, &stdout, &stderr, none, nil))
	require.Equal(t, 1, serveCmd(t.Context(), []string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, &stdout, &stderr, none, nil))
	cfgPath := filepath.Join(t.TempDir(), "tollgate.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(serveConfig), 0o600))
	require.Equal(t, 2, serveCmd(t.Context(), []string{"--config", cfgPath}, &stdout, &stderr, none, nil), "no DATABASE_URL")
	require.Equal(t, 0, serveCmd(t.Context(), []string{"--help"}, &stdout, &stderr, none, nil))
	require.Contains(t, stdout.String(), "usage: tollgate serve")
}
