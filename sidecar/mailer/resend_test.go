package mailer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/metrics"
)

// Each failure class of Resend's API, against a server that behaves like it (fakeResend).
func TestResendFailureClasses(t *testing.T) {
	t.Parallel()
	status := func(code int, name, msg string) func(w http.ResponseWriter, r resendRequest) bool {
		return func(w http.ResponseWriter, r resendRequest) bool { jsonError(w, code, name, msg); return true }
	}
	for _, tc := range []struct {
		name      string
		script    []func(w http.ResponseWriter, r resendRequest) bool
		tune      func(*Options)
		status    string // final
		attempts  int
		requests  int
		delivered int
		lastError string
	}{{
		name: "429 honours retry-after",
		script: []func(w http.ResponseWriter, r resendRequest) bool{
			func(w http.ResponseWriter, r resendRequest) bool {
				w.Header().Set("Retry-After", "1")
				jsonError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "Too many requests. You can only make 2 requests per second.")
				return true
			},
		},
		status: "sent", attempts: 2, requests: 2, delivered: 1,
	}, {
		name:   "409 concurrent idempotent request is retried",
		script: []func(w http.ResponseWriter, r resendRequest) bool{status(409, "concurrent_idempotent_requests", "Same idempotency key used while original request is still in progress.")},
		status: "sent", attempts: 2, requests: 2, delivered: 1,
	}, {
		name:   "409 key reused with another payload is permanent",
		script: []func(w http.ResponseWriter, r resendRequest) bool{status(409, "invalid_idempotent_request", "Same idempotency key used with a different request payload.")},
		status: "dead", attempts: 1, requests: 1, delivered: 0,
		lastError: "resend: 409 invalid_idempotent_request: Same idempotency key used with a different request payload.",
	}, {
		name:   "5xx is retried",
		script: []func(w http.ResponseWriter, r resendRequest) bool{status(500, "internal_server_error", "An unexpected error occurred."), status(503, "", "")},
		status: "sent", attempts: 3, requests: 3, delivered: 1,
	}, {
		name:   "422 fails at once with the provider's message",
		script: []func(w http.ResponseWriter, r resendRequest) bool{status(422, "validation_error", "Invalid `to` field. The email address needs to follow the `email@example.com` format.")},
		status: "dead", attempts: 1, requests: 1, delivered: 0,
		lastError: "resend: 422 validation_error: Invalid `to` field. The email address needs to follow the `email@example.com` format.",
	}, {
		name:   "401 (a key being rotated) is retried",
		script: []func(w http.ResponseWriter, r resendRequest) bool{status(401, "missing_api_key", "Missing API key in the authorization header.")},
		status: "sent", attempts: 2, requests: 2, delivered: 1,
	}, {
		name:   "403 fails at once",
		script: []func(w http.ResponseWriter, r resendRequest) bool{status(403, "validation_error", "The acme.test domain is not verified.")},
		status: "dead", attempts: 1, requests: 1, delivered: 0,
		lastError: "resend: 403 validation_error: The acme.test domain is not verified.",
	}, {
		// nothing logged or stored from the provider carries a secret, and what is stored stays within bounds
		name:   "secrets in the provider's message are masked",
		script: []func(w http.ResponseWriter, r resendRequest) bool{status(400, "validation_error", "API key re_Ab12Cd34_EfGh56IjKl78MnOp is not allowed to send from sk_live_51Hxyz")},
		status: "dead", attempts: 1, requests: 1, delivered: 0,
		lastError: "resend: 400 validation_error: API key re_[REDACTED] is not allowed to send from sk_live_[REDACTED]",
	}, {
		name:   "an over-long message is cut",
		script: []func(w http.ResponseWriter, r resendRequest) bool{status(400, "validation_error", strings.Repeat("x", 20000))},
		status: "dead", attempts: 1, requests: 1, delivered: 0,
		lastError: "resend: 400 validation_error: " + strings.Repeat("x", maxErrorText-len("resend: 400 validation_error: ")) + "...",
	}, {
		name:   "5xx until max attempts is dead",
		script: []func(w http.ResponseWriter, r resendRequest) bool{status(502, "", "bad gateway"), status(502, "", "bad gateway"), status(502, "", "bad gateway")},
		tune:   func(o *Options) { o.MaxAttempts = 3 },
		status: "dead", attempts: 3, requests: 3, delivered: 0,
		lastError: "resend: 502: bad gateway",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 1)
			f := newFakeResend(t)
			for _, h := range tc.script {
				f.then(h)
			}
			reg := metrics.NewRegistry()
			m := b.start(t, f.provider(t, 5*time.Second), func(o *Options) {
				o.Metrics = reg
				if tc.tune != nil {
					tc.tune(o)
				}
			})
			b.customer(t, "alice", "alice@example.test")
			b.hitLimit(t, "alice", 1)
			rows := b.waitFinal(t, 1)
			require.Equal(t, tc.status, rows[0].Status, "last error: %v", rows[0].LastError)
			require.Equal(t, tc.attempts, rows[0].Attempts)
			requests, delivered := f.snapshot()
			require.Len(t, requests, tc.requests)
			require.Len(t, delivered, tc.delivered)
			for _, r := range requests {
				require.Equal(t, requests[0].Key, r.Key, "every attempt has the same idempotency key")
				require.Equal(t, string(requests[0].Body), string(r.Body), "every attempt has the same payload")
			}
			if tc.lastError != "" {
				require.Equal(t, tc.lastError, *rows[0].LastError)
			}
			if tc.status == "sent" {
				require.Equal(t, delivered[0].ID, *rows[0].ProviderID)
			}
			sent, dead := 0.0, 0.0
			if tc.status == "sent" {
				sent = 1
			} else {
				dead = 1
			}
			// the worker counts the outcome just after it commits the row's status
			require.Eventually(t, func() bool {
				return m.m.sent.With("resend").Value()+m.m.dead.With("resend").Value() == 1
			}, 5*time.Second, time.Millisecond)
			require.Equal(t, sent, m.m.sent.With("resend").Value())
			require.Equal(t, dead, m.m.dead.With("resend").Value())
			require.Equal(t, float64(tc.attempts)-1, m.m.failed.With("resend").Value())
			var out bytes.Buffer
			reg.Write(&out)
			if sent == 1 {
				require.Contains(t, out.String(), "tollgate_email_handoff_seconds_count{provider=\"resend\"} 1\n")
			}
			require.Contains(t, out.String(), fmt.Sprintf("tollgate_emails_dead %d\n", int(dead)))
			require.Contains(t, out.String(), "tollgate_emails_backlog 0\n")
			require.Contains(t, out.String(), "tollgate_email_listener_up 1\n")
		})
	}
}

func TestResendRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	f := newFakeResend(t)
	var first time.Time
	f.then(func(w http.ResponseWriter, r resendRequest) bool {
		first = time.Now()
		w.Header().Set("Retry-After", "1")
		jsonError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "Too many requests.")
		return true
	})
	var second time.Time
	f.then(func(w http.ResponseWriter, r resendRequest) bool { second = time.Now(); return false })
	b.start(t, f.provider(t, 5*time.Second), nil) // the backoff alone would retry in 10 ms
	b.customer(t, "alice", "alice@example.test")
	b.hitLimit(t, "alice", 1)
	require.Equal(t, "sent", b.waitFinal(t, 1)[0].Status)
	require.GreaterOrEqual(t, second.Sub(first), 900*time.Millisecond)
}

// Resend accepts the email but its answer never comes: the attempt times out, and the retry with the same key
// and payload gets Resend's stored answer instead of a second email.
func TestResendTimeoutAfterAcceptingSendsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	f := newFakeResend(t)
	f.then(func(w http.ResponseWriter, r resendRequest) bool {
		f.deliver(discard{}, r)
		<-f.hold // hold the answer until the test ends
		return true
	})
	b.start(t, f.provider(t, 200*time.Millisecond), nil)
	b.customer(t, "alice", "alice@example.test")
	b.hitLimit(t, "alice", 1)
	rows := b.waitFinal(t, 1)
	require.Equal(t, "sent", rows[0].Status)
	require.Equal(t, 2, rows[0].Attempts)
	requests, delivered := f.snapshot()
	require.Len(t, requests, 2)
	require.Len(t, delivered, 1)
	require.Equal(t, requests[0].Key, requests[1].Key)
	require.Equal(t, requests[0].Body, requests[1].Body)
	require.Equal(t, delivered[0].ID, *rows[0].ProviderID)

	var payload struct {
		From    string   `json:"from"`
		To      []string `json:"to"`
		Subject string   `json:"subject"`
		HTML    string   `json:"html"`
		Text    string   `json:"text"`
	}
	require.NoError(t, json.Unmarshal(requests[0].Body, &payload))
	require.Equal(t, "Acme <billing@acme.test>", payload.From)
	require.Equal(t, []string{"alice@example.test"}, payload.To)
	require.Contains(t, payload.Text, "https://acme.test/pricing")
	require.Contains(t, payload.HTML, "https://acme.test/pricing")
}

// discard is a ResponseWriter that writes nowhere.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

func TestResendProviderChecksItsSettings(t *testing.T) {
	t.Parallel()
	_, err := NewResendProvider("", "", 0)
	require.ErrorContains(t, err, "RESEND_API_KEY")
	_, err = NewResendProvider("re_x", "ftp://x", 0)
	require.ErrorContains(t, err, "RESEND_BASE_URL")
	p, err := NewResendProvider("re_x", "", 0)
	require.NoError(t, err)
	require.Equal(t, DefaultResendBaseURL, p.client.BaseURL.String())
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, 2*time.Second, parseRetryAfter("2", now))
	require.Equal(t, 30*time.Second, parseRetryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now))
	require.Zero(t, parseRetryAfter("", now))
	require.Zero(t, parseRetryAfter("soon", now))
	require.Zero(t, parseRetryAfter(context.Canceled.Error(), now))
}

func TestPacerSpacesSends(t *testing.T) {
	t.Parallel()
	p := newPacer(20)
	start := time.Now()
	for range 5 {
		require.NoError(t, p.wait(context.Background()))
	}
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "4 gaps of 50 ms")
	p.pauseUntil(time.Now().Add(100 * time.Millisecond))
	start = time.Now()
	require.NoError(t, p.wait(context.Background()))
	require.GreaterOrEqual(t, time.Since(start), 90*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, newPacer(0.001).wait(ctx), context.Canceled)
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	t.Parallel()
	b := backoff{base: time.Second, max: 10 * time.Second}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 40: 10 * time.Second} {
		for range 20 {
			d := b.delay(attempt)
			require.GreaterOrEqual(t, d, want/2)
			require.LessOrEqual(t, d, want)
		}
	}
}
