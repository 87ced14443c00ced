package mailer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/resend/resend-go/v2"
)

// DefaultResendBaseURL is Resend's API; RESEND_BASE_URL points elsewhere (a test server).
const DefaultResendBaseURL = "https://api.resend.com/"

// Resend error names (the "name" of an error response) that decide how a 409 is handled.
const (
	resendConcurrentIdempotent = "concurrent_idempotent_requests" // the same key is in flight: retry
	resendInvalidIdempotent    = "invalid_idempotent_request"     // the key was used with another payload: give up
)

// ResendProvider sends through Resend's HTTP API with resend-go. Every attempt at one email carries the same
// Idempotency-Key and the same JSON body, byte for byte (the rendering is stored at the first hand-off), so
// Resend delivers it once however often it is retried within Resend's idempotency window (24 hours).
type ResendProvider struct {
	client *resend.Client
}

// NewResendProvider returns a provider for apiKey (RESEND_API_KEY). baseURL "" means DefaultResendBaseURL;
// timeout bounds each request (0 means 30 s).
func NewResendProvider(apiKey, baseURL string, timeout time.Duration) (*ResendProvider, error) {
	if apiKey == "" {
		return nil, errors.New("email provider resend needs RESEND_API_KEY in the environment")
	}
	if baseURL == "" {
		baseURL = DefaultResendBaseURL
	}
	if !strings.HasSuffix(baseURL, "/") {
		baseURL += "/"
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("RESEND_BASE_URL %q is not an http(s) URL", baseURL)
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	hc := &http.Client{Timeout: timeout, Transport: captureTransport{base: http.DefaultTransport}}
	c := resend.NewCustomClient(hc, apiKey)
	c.BaseURL = u // resend-go reads RESEND_BASE_URL once, at package init; set it per client instead
	return &ResendProvider{client: c}, nil
}

func (p *ResendProvider) Name() string     { return "resend" }
func (p *ResendProvider) Idempotent() bool { return true }

func (p *ResendProvider) Send(ctx context.Context, msg *Message) (string, error) {
	req := &resend.SendEmailRequest{
		From:    msg.From,
		To:      []string{msg.To},
		Subject: msg.Subject,
		Html:    msg.HTML,
		Text:    msg.Text,
	}
	var got apiError
	ctx = context.WithValue(ctx, captureKey{}, &got)
	resp, err := p.client.Emails.SendWithOptions(ctx, req, &resend.SendEmailOptions{IdempotencyKey: msg.IdempotencyKey})
	if err == nil {
		return resp.Id, nil
	}
	if got.status == 0 {
		// No response: a network error or a timeout, maybe after Resend accepted the request. Retrying with
		// the same key is safe.
		return "", &SendError{Unknown: true, Err: fmt.Errorf("resend: %w", err)}
	}
	return "", got.classify()
}

// apiError is what captureTransport saw of an error response.
type apiError struct {
	status     int
	name       string
	message    string
	retryAfter string
}

func (e *apiError) classify() *SendError {
	what := fmt.Sprintf("resend: %d", e.status)
	if e.name != "" {
		what += " " + e.name
	}
	if e.message != "" {
		what += ": " + e.message
	}
	err := errors.New(what)
	switch {
	case e.status == http.StatusTooManyRequests:
		return &SendError{RetryAfter: parseRetryAfter(e.retryAfter, time.Now()), Err: err}
	case e.status == http.StatusConflict && e.name == resendConcurrentIdempotent:
		// the first request with this key is still being processed
		return &SendError{Unknown: true, Err: err}
	case e.status >= 500:
		return &SendError{Unknown: true, Err: err}
	case e.status == http.StatusUnauthorized:
		// a missing or revoked API key (a key being rotated): nothing was sent, and the same request
		// succeeds once RESEND_API_KEY is fixed, so back off and retry until max_attempts
		return &SendError{Err: err}
	default:
		// 400, 403, 404, 422, a 409 for a key reused with another payload (invalid_idempotent_request),
		// and any other 4xx: retrying sends the same request, which fails the same way.
		return &SendError{Permanent: true, Err: err}
	}
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date. 0 means absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

type captureKey struct{}

// captureTransport records the status, error name and message and Retry-After of an error response for the
// request's context: resend-go turns most of them into plain error strings, which cannot tell a 409 from a 422
// or a 5xx. The body is put back for resend-go to read as usual.
type captureTransport struct{ base http.RoundTripper }

func (t captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	got, _ := req.Context().Value(captureKey{}).(*apiError)
	if err != nil || got == nil || (resp.StatusCode >= 200 && resp.StatusCode < 300) {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		// the status line came but the body did not: treat as no response
		return resp, nil
	}
	got.status = resp.StatusCode
	got.retryAfter = resp.Header.Get("Retry-After")
	var e struct {
		Name    string `json:"name"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		got.name, got.message = e.Name, e.Message
	}
	if got.message == "" {
		got.message = strings.TrimSpace(string(body))
		if got.message == "" {
			got.message = http.StatusText(resp.StatusCode)
		}
	}
	return resp, nil
}
