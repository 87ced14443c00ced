package sidecar_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/metrics"
	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/sidecar"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// component is a Component whose readiness and work the test controls.
type component struct {
	name    string
	notOK   atomic.Pointer[string] // Ready's error text; nil = ready
	started chan struct{}
	// on ctx's end, Run finishes its "work in hand" (waits for release) and records that it did
	release  chan struct{}
	finished atomic.Bool
	fail     error // Run returns it at once
}

func newComponent(name string) *component {
	return &component{name: name, started: make(chan struct{}), release: make(chan struct{})}
}

func (c *component) Name() string { return c.name }

func (c *component) Run(ctx context.Context) error {
	close(c.started)
	if c.fail != nil {
		return c.fail
	}
	<-ctx.Done()
	<-c.release
	c.finished.Store(true)
	return nil
}

func (c *component) Ready(context.Context) error {
	if msg := c.notOK.Load(); msg != nil {
		return errors.New(*msg)
	}
	return nil
}

type testBundle struct {
	db  *pgtest.DB
	reg *metrics.Registry
	srv *sidecar.Server
}

// setup gives a server connected as the sidecar role to a fresh, fully migrated database.
func setup(t *testing.T) *testBundle {
	t.Helper()
	db := pgtest.NewDB(t)
	pool, err := pgxpool.New(context.Background(), db.SidecarURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	reg := metrics.NewRegistry()
	return &testBundle{db: db, reg: reg, srv: sidecar.New(config.Defaults(), pool, nil, reg)}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newComponent("mailer")
	b.srv.Add(c)
	b.srv.Handle("GET /plugged", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hi") }))
	hs := httptest.NewServer(b.srv.Handler())
	t.Cleanup(hs.Close)

	code, body := get(t, hs.URL+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)

	code, body = get(t, hs.URL+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	var ready struct {
		Status string
		Checks map[string]string
	}
	require.NoError(t, json.Unmarshal([]byte(body), &ready))
	require.Equal(t, map[string]string{"database": "ok", "mailer": "ok"}, ready.Checks)

	msg := "smtp unreachable"
	c.notOK.Store(&msg)
	code, body = get(t, hs.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.NoError(t, json.Unmarshal([]byte(body), &ready))
	require.Equal(t, "unavailable", ready.Status)
	require.Equal(t, msg, ready.Checks["mailer"])
	require.Equal(t, "ok", ready.Checks["database"])

	code, body = get(t, hs.URL+"/plugged")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "hi", body)
	code, _ = get(t, hs.URL+"/nope")
	require.Equal(t, http.StatusNotFound, code)

	code, body = get(t, hs.URL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	lines := strings.Split(body, "\n")
	require.Contains(t, lines, `tollgate_http_requests_total{route="GET /healthz",code="200"} 1`)
	require.Contains(t, lines, `tollgate_http_requests_total{route="GET /readyz",code="503"} 1`)
	require.Contains(t, lines, `tollgate_http_requests_total{route="unmatched",code="404"} 1`)
}

func TestReadinessNeedsCurrentMigrations(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmptyDB(t)
	conn := db.Conn(t, db.URL)
	_, err := schema.Migrate(context.Background(), conn, 3, nil)
	require.NoError(t, err)
	pool := db.Pool(t)
	hs := httptest.NewServer(sidecar.New(nil, pool, nil, nil).Handler())
	t.Cleanup(hs.Close)
	code, body := get(t, hs.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	var ready struct{ Checks map[string]string }
	require.NoError(t, json.Unmarshal([]byte(body), &ready))
	require.NotEqual(t, "ok", ready.Checks["database"])

	// and a database that cannot be reached at all
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dead, err := pgxpool.New(context.Background(), "postgres://nobody@"+addr+"/none?connect_timeout=1")
	require.NoError(t, err)
	t.Cleanup(dead.Close)
	hs2 := httptest.NewServer(sidecar.New(nil, dead, nil, nil).Handler())
	t.Cleanup(hs2.Close)
	code, _ = get(t, hs2.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
}

// A database at the right version whose SQL functions are another build's (its sql/ changed, or
// tern code install ran another checkout) is not ready until tollgate migrate installs these.
func TestReadinessNeedsTheCurrentCodePackage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hs := httptest.NewServer(b.srv.Handler())
	t.Cleanup(hs.Close)
	code, body := get(t, hs.URL+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	b.db.Exec(t, "UPDATE tollgate.code_package SET sha256 = repeat('0', 64)")
	code, body = get(t, hs.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	var ready struct{ Checks map[string]string }
	require.NoError(t, json.Unmarshal([]byte(body), &ready))
	require.Contains(t, ready.Checks["database"], "run tollgate migrate")

	_, err := schema.Migrate(context.Background(), b.db.Conn(t, b.db.URL), schema.Latest, nil)
	require.NoError(t, err)
	code, body = get(t, hs.URL+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
}

func TestGracefulShutdownFinishesInFlightWork(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newComponent("worker")
	b.srv.Add(c)
	entered, unblock := make(chan struct{}), make(chan struct{})
	b.srv.Handle("POST /slow", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-unblock
		_, _ = io.WriteString(w, "done")
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error)
	go func() { served <- b.srv.Serve(ctx, ln) }()
	<-c.started

	type answer struct {
		code int
		body string
		err  error
	}
	answered := make(chan answer)
	go func() {
		resp, err := http.Post(url+"/slow", "text/plain", nil)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, string(body), err}
	}()
	<-entered
	cancel() // what SIGTERM does through signal.NotifyContext in main

	require.Panics(t, func() { b.srv.Add(newComponent("late")) })
	select {
	case err := <-served:
		t.Fatalf("Serve returned with a request in flight: %v", err)
	default:
	}
	close(unblock)
	a := <-answered
	require.NoError(t, a.err)
	require.Equal(t, http.StatusOK, a.code)
	require.Equal(t, "done", a.body)
	close(c.release) // the component finishes its work in hand
	require.NoError(t, <-served)
	require.True(t, c.finished.Load())
	_, err = http.Get(url + "/healthz")
	require.Error(t, err, "the server still accepts connections")
}

func TestFailingComponentStopsTheServer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bad := newComponent("broken")
	bad.fail = errors.New("cannot start")
	ok := newComponent("fine")
	close(ok.release)
	b.srv.Add(bad)
	b.srv.Add(ok)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = b.srv.Serve(ctx, ln)
	require.ErrorIs(t, err, bad.fail)
	require.True(t, ok.finished.Load())
}

// ServeSplit: sidecar.listen serves /healthz and the components' routes (the webhook, the funnel page), and
// never /metrics or /readyz; sidecar.metrics_listen serves those, and nothing of the components'.
func TestMetricsAndReadinessOnTheirOwnListener(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newComponent("worker")
	close(c.release)
	b.srv.Add(c)
	b.srv.Handle("POST /webhooks/stripe", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hook") }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	public, private := "http://"+ln.Addr().String(), "http://"+mln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error)
	go func() { served <- b.srv.ServeSplit(ctx, ln, mln) }()

	for url, want := range map[string]int{
		public + "/healthz": http.StatusOK, public + "/metrics": http.StatusNotFound, public + "/readyz": http.StatusNotFound,
		private + "/healthz": http.StatusOK, private + "/metrics": http.StatusOK, private + "/readyz": http.StatusOK,
	} {
		code, body := get(t, url)
		require.Equal(t, want, code, "%s: %s", url, body)
	}
	resp, err := http.Post(public+"/webhooks/stripe", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = http.Post(private+"/webhooks/stripe", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the webhook is not on the metrics listener")
	// both listeners' requests are counted
	_, body := get(t, private+"/metrics")
	require.Contains(t, strings.Split(body, "\n"), `tollgate_http_requests_total{route="POST /webhooks/stripe",code="200"} 1`)
	cancel()
	require.NoError(t, <-served)
}

// With TOLLGATE_METRICS_TOKEN, /metrics and /readyz answer only a request that carries it; /healthz needs none.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.MetricsToken = "s3cret-token"
	hs := httptest.NewServer(b.srv.Handler())
	t.Cleanup(hs.Close)
	call := func(path, auth string) int {
		req, err := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			require.Equal(t, `Bearer realm="tollgate"`, resp.Header.Get("WWW-Authenticate"))
		}
		return resp.StatusCode
	}
	for _, path := range []string{"/metrics", "/readyz"} {
		require.Equal(t, http.StatusUnauthorized, call(path, ""), path)
		require.Equal(t, http.StatusUnauthorized, call(path, "Bearer wrong"), path)
		require.Equal(t, http.StatusUnauthorized, call(path, "Basic czNjcmV0LXRva2Vu"), path)
		require.Equal(t, http.StatusUnauthorized, call(path, "Bearer s3cret-tokenX"), path)
		require.Equal(t, http.StatusOK, call(path, "Bearer s3cret-token"), path)
	}
	require.Equal(t, http.StatusOK, call("/healthz", ""))
}

// RedactHandler masks secrets in a record's message and attributes, groups and handler attributes included.
func TestRedactHandler(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	log := slog.New(sidecar.RedactHandler(slog.NewJSONHandler(&out, nil))).With("key", "sk_live_abc123")
	log.Error("stripe said Invalid API Key provided: sk_test_XyZ789",
		"err", errors.New("dial postgres://app:hunter2@db/app"),
		slog.Group("req", "auth", "Bearer eyJabc.def"),
		"secrets", []string{"whsec_abc123"}, "n", 3)
	s := out.String()
	for _, secret := range []string{"abc123", "XyZ789", "hunter2", "eyJabc", "whsec_abc123"} {
		require.NotContains(t, s, secret)
	}
	require.Contains(t, s, `"msg":"stripe said Invalid API Key provided: sk_test_[REDACTED]"`)
	require.Contains(t, s, `"err":"dial postgres://app:[REDACTED]@db/app"`)
	require.Contains(t, s, `"n":3`)
}
