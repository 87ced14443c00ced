package mailer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	pgtest.Main(m)
}

type testBundle struct {
	db      *pgtest.DB
	owner   *pgxpool.Pool
	sidecar *pgxpool.Pool
	app     *pgxpool.Pool
}

// setup gives a test its own database with a free plan (default) and a feature "api" allowing free customers
// limit calls per month, with the built-in upgrade prompt.
func setup(t *testing.T, limit int64) *testBundle {
	t.Helper()
	db := pgtest.NewDB(t)
	b := &testBundle{db: db, owner: db.Pool(t)}
	b.sidecar = newPool(t, db.SidecarURL, 8)
	b.app = newPool(t, db.AppURL, 8)
	b.exec(t, `SELECT tollgate.define_plan('free', true)`)
	b.exec(t, `SELECT tollgate.define_feature('api', 'month', upgrade_prompt => 'upgrade_prompt')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'api', $1)`, limit)
	return b
}

func newPool(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func (b *testBundle) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := b.owner.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

func (b *testBundle) count(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, b.owner.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// customer registers a customer with an email address, as the app does.
func (b *testBundle) customer(t testing.TB, customer, email string) {
	t.Helper()
	_, err := b.app.Exec(context.Background(), `SELECT tollgate.set_customer($1, $2)`, customer, email)
	require.NoError(t, err)
}

// consume calls tollgate.consume as the app, n times, and returns whether the last call was allowed.
func (b *testBundle) consume(t testing.TB, customer string, n int) bool {
	t.Helper()
	var allowed bool
	for range n {
		require.NoError(t, b.app.QueryRow(context.Background(),
			`SELECT allowed FROM tollgate.consume($1, 'api')`, customer).Scan(&allowed))
	}
	return allowed
}

// hitLimit makes customer cross the limit of "api" (limit calls allowed, then one blocked).
func (b *testBundle) hitLimit(t testing.TB, customer string, limit int) {
	t.Helper()
	require.True(t, b.consume(t, customer, limit))
	require.False(t, b.consume(t, customer, 1))
}

type emailRow struct {
	ID         int64
	Customer   string
	Status     string
	Attempts   int
	ToEmail    *string
	Provider   *string
	ProviderID *string
	LastError  *string
}

func (b *testBundle) emails(t testing.TB) []emailRow {
	t.Helper()
	rows, err := b.owner.Query(context.Background(),
		`SELECT id, customer, status, attempts, to_email, provider, provider_id, last_error FROM tollgate.emails ORDER BY id`)
	require.NoError(t, err)
	var out []emailRow
	for rows.Next() {
		var r emailRow
		require.NoError(t, rows.Scan(&r.ID, &r.Customer, &r.Status, &r.Attempts, &r.ToEmail, &r.Provider, &r.ProviderID, &r.LastError))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// waitStatus waits until every email row is in a final state (sent, dead, skipped) and returns the rows.
func (b *testBundle) waitFinal(t testing.TB, want int) []emailRow {
	t.Helper()
	var rows []emailRow
	require.Eventually(t, func() bool {
		rows = b.emails(t)
		if len(rows) != want {
			return false
		}
		for _, r := range rows {
			if r.Status != "sent" && r.Status != "dead" && r.Status != "skipped" {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "emails: %+v", rows)
	return rows
}

func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// testLogger writes the mailer's log to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// start runs a mailer with fast test settings until the test ends.
func (b *testBundle) start(t testing.TB, p Provider, tune func(*Options)) *Mailer {
	t.Helper()
	tpl, err := LoadTemplates("")
	require.NoError(t, err)
	opts := Options{
		Pool:          b.sidecar,
		Provider:      p,
		Templates:     tpl,
		From:          "Acme <billing@acme.test>",
		UpgradeURL:    "https://acme.test/pricing",
		RatePerSecond: 1000,
		PollInterval:  time.Second,
		SendTimeout:   5 * time.Second,
		StaleClaim:    time.Minute,
		BackoffBase:   10 * time.Millisecond,
		BackoffMax:    50 * time.Millisecond,
		Logger:        testLogger(t),
	}
	if tune != nil {
		tune(&opts)
	}
	m, err := New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool { return m.Ready(ctx) == nil }, 10*time.Second, 5*time.Millisecond)
	return m
}

// mailpit is a mailpit server of the test's own.
type mailpit struct {
	smtpAddr string
	api      string
}

// mailpitBin finds mailpit where scripts/tools.sh builds it, or on PATH, or skips the test.
func mailpitBin(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache")
	}
	if p := filepath.Join(dir, "tollgate", "bin", "mailpit"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("mailpit not found: CI must run scripts/tools.sh first")
	}
	t.Skip("mailpit not found: run scripts/tools.sh")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// startMailpit runs mailpit on free ports until the test ends, without deduplication (a second copy of a
// message shows as a second message). args are more flags.
func startMailpit(t testing.TB, args ...string) *mailpit {
	t.Helper()
	bin := mailpitBin(t)
	for try := 0; ; try++ {
		smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
		cmd := exec.Command(bin, append([]string{"--smtp", smtpAddr, "--listen", httpAddr,
			"--database", filepath.Join(t.TempDir(), "mailpit.db"), "--disable-version-check", "--quiet"}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		mp := &mailpit{smtpAddr: smtpAddr, api: "http://" + httpAddr}
		ready := false
		deadline := time.Now().Add(20 * time.Second)
		for !ready && time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			resp, err := http.Get(mp.api + "/readyz")
			if err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
			}
			if !ready {
				select {
				case <-exited:
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		if ready {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return mp
		}
		cmd.Process.Kill()
		<-exited
		if try == 2 {
			t.Fatalf("mailpit did not start: %s", out.String())
		}
	}
}

type mailpitMessage struct {
	ID        string `json:"ID"`
	MessageID string `json:"MessageID"`
	Subject   string `json:"Subject"`
	To        []struct {
		Address string `json:"Address"`
	} `json:"To"`
}

func (mp *mailpit) messages(t testing.TB) []mailpitMessage {
	t.Helper()
	resp, err := http.Get(mp.api + "/api/v1/messages?limit=1000")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Messages []mailpitMessage `json:"messages"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body.Messages
}

// text returns the plain-text body of a message.
func (mp *mailpit) text(t testing.TB, id string) string {
	t.Helper()
	resp, err := http.Get(mp.api + "/api/v1/message/" + id)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Text string `json:"Text"`
		HTML string `json:"HTML"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body.Text
}

func (mp *mailpit) smtpURL() string { return "smtp://" + mp.smtpAddr }

// fakeResend behaves like Resend's POST /emails: it checks the API key, remembers each Idempotency-Key with
// the body first sent under it (a repeat with the same body gets the same answer and delivers nothing; another
// body gets a 409 invalid_idempotent_request), and can be scripted to fail.
type fakeResend struct {
	mu        sync.Mutex
	requests  []resendRequest
	delivered []resendRequest
	byKey     map[string]resendRequest
	script    []func(w http.ResponseWriter, r resendRequest) bool // consumed in order; true = handled
	hold      chan struct{}                                       // closed to release held requests
	url       string
}

type resendRequest struct {
	Key  string
	Body []byte
	ID   string
}

func newFakeResend(t testing.TB) *fakeResend {
	t.Helper()
	f := &fakeResend{byKey: map[string]resendRequest{}, hold: make(chan struct{})}
	srv := &http.Server{Handler: f}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go srv.Serve(l)
	f.url = "http://" + l.Addr().String()
	t.Cleanup(func() {
		f.release()
		srv.Close()
	})
	return f
}

func (f *fakeResend) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.hold:
	default:
		close(f.hold)
	}
}

// then adds a scripted answer for the next request.
func (f *fakeResend) then(h func(w http.ResponseWriter, r resendRequest) bool) {
	f.mu.Lock()
	f.script = append(f.script, h)
	f.mu.Unlock()
}

func jsonError(w http.ResponseWriter, status int, name, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"statusCode":%d,"name":%q,"message":%q}`, status, name, message)
}

func (f *fakeResend) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/emails" {
		jsonError(w, http.StatusNotFound, "not_found", "no route "+req.URL.Path)
		return
	}
	if req.Header.Get("Authorization") != "Bearer re_test_key" {
		jsonError(w, http.StatusUnauthorized, "missing_api_key", "Missing API key")
		return
	}
	body, _ := io.ReadAll(req.Body)
	r := resendRequest{Key: req.Header.Get("Idempotency-Key"), Body: body}
	f.mu.Lock()
	f.requests = append(f.requests, r)
	var h func(w http.ResponseWriter, r resendRequest) bool
	if len(f.script) > 0 {
		h, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	if h != nil && h(w, r) {
		return
	}
	f.deliver(w, r)
}

// deliver answers as Resend does for a request it processes.
func (f *fakeResend) deliver(w http.ResponseWriter, r resendRequest) {
	f.mu.Lock()
	prev, seen := f.byKey[r.Key]
	if !seen {
		r.ID = fmt.Sprintf("re_email_%d", len(f.delivered)+1)
		f.delivered = append(f.delivered, r)
		if r.Key != "" {
			f.byKey[r.Key] = r
		}
	}
	f.mu.Unlock()
	if seen && !bytes.Equal(prev.Body, r.Body) {
		jsonError(w, http.StatusConflict, "invalid_idempotent_request",
			"Same idempotency key used with a different request payload. Change your idempotency key or payload.")
		return
	}
	if seen {
		r.ID = prev.ID
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q}`, r.ID)
}

func (f *fakeResend) counts() (requests, delivered int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests), len(f.delivered)
}

func (f *fakeResend) snapshot() (requests, delivered []resendRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]resendRequest(nil), f.requests...), append([]resendRequest(nil), f.delivered...)
}

func (f *fakeResend) provider(t testing.TB, timeout time.Duration) *ResendProvider {
	t.Helper()
	p, err := NewResendProvider("re_test_key", f.url, timeout)
	require.NoError(t, err)
	return p
}
