package stripesync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/form"
	"golang.org/x/time/rate"
)

// Client reads subscriptions and Checkout Sessions from the Stripe API through stripe-go's client, at most
// RatePerSecond requests per second (shared by webhooks and reconcile), retrying 429s (after Retry-After),
// 5xx answers and network errors with backoff.
type Client struct {
	api     *client.API
	backend stripe.Backend
	key     string
	limiter *rate.Limiter
	opt     ClientOptions

	mu         sync.Mutex
	pauseUntil time.Time // after a 429, every request waits until then
}

// ClientOptions configure a Client.
type ClientOptions struct {
	// Key is the secret API key (STRIPE_SECRET_KEY).
	Key string
	// APIBase replaces https://api.stripe.com (STRIPE_API_BASE; stripe-mock in tests).
	APIBase string
	// RatePerSecond bounds requests per second; 0 means config.DefaultStripeRatePerSecond (25).
	RatePerSecond float64
	// MaxAttempts is how often one request is tried; 0 means 8.
	MaxAttempts int
	// MinBackoff is the first wait after a failure without Retry-After, doubling up to MaxBackoff; 0 means
	// 500ms and 30s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// HTTPClient is the transport; nil means one with a 30 s timeout.
	HTTPClient *http.Client
	// OnError is told of every failed request (op: "subscriptions.get", ...; the error); nil ignores them.
	OnError func(op string, err error)
}

// NewClient returns a client for the Stripe API.
func NewClient(opt ClientOptions) *Client {
	if opt.RatePerSecond <= 0 {
		opt.RatePerSecond = 25
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 8
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = 500 * time.Millisecond
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 30 * time.Second
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	cfg := &stripe.BackendConfig{
		HTTPClient:        opt.HTTPClient,
		MaxNetworkRetries: stripe.Int64(0), // retries are ours: they honour Retry-After and the rate limit
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if opt.APIBase != "" {
		cfg.URL = stripe.String(strings.TrimRight(opt.APIBase, "/"))
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, cfg)
	api := client.New(opt.Key, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
	return &Client{
		api:     api,
		backend: api.Subscriptions.B,
		key:     opt.Key,
		limiter: rate.NewLimiter(rate.Limit(opt.RatePerSecond), 1),
		opt:     opt,
	}
}

// API is the underlying stripe-go client (same backend, key and base URL).
func (c *Client) API() *client.API { return c.api }

// Subscription fetches one subscription with its customer expanded (for metadata.tollgate_customer), and every
// item when it has more than one page of them.
func (c *Client) Subscription(ctx context.Context, id string) (Subscription, error) {
	var w wireSubscription
	q := &form.Values{}
	q.Add("expand[]", "customer")
	if err := c.call(ctx, "subscriptions.get", http.MethodGet, "/v1/subscriptions/"+id, q, &w); err != nil {
		return Subscription{}, err
	}
	if err := c.moreItems(ctx, &w); err != nil {
		return Subscription{}, err
	}
	return w.subscription()
}

// CheckoutSession fetches one Checkout Session.
func (c *Client) CheckoutSession(ctx context.Context, id string) (CheckoutSession, error) {
	var w wireCheckoutSession
	if err := c.call(ctx, "checkout.sessions.get", http.MethodGet, "/v1/checkout/sessions/"+id, nil, &w); err != nil {
		return CheckoutSession{}, err
	}
	return CheckoutSession{
		ID:                w.ID,
		ClientReferenceID: w.ClientReferenceID,
		Customer:          w.Customer.ID,
		Subscription:      w.Subscription.ID,
		Status:            w.Status,
	}, nil
}

// Page is one page of a subscription listing.
type Page struct {
	Subscriptions []Subscription
	// FetchedAt is when the request for this page started.
	FetchedAt time.Time
	HasMore   bool
}

// ListSubscriptions lists every subscription (status=all), pageSize at a time (1 to 100; 0 means 100) with
// customers expanded, and calls fn with each page in order. It stops at the first error of fn or of Stripe.
func (c *Client) ListSubscriptions(ctx context.Context, pageSize int, fn func(Page) error) error {
	if pageSize <= 0 || pageSize > 100 {
		pageSize = 100
	}
	after := ""
	for {
		q := &form.Values{}
		q.Add("status", "all")
		q.Add("limit", strconv.Itoa(pageSize))
		q.Add("expand[]", "data.customer")
		if after != "" {
			q.Add("starting_after", after)
		}
		var list wireSubscriptionList
		fetchedAt := time.Now()
		if err := c.call(ctx, "subscriptions.list", http.MethodGet, "/v1/subscriptions", q, &list); err != nil {
			return err
		}
		page := Page{FetchedAt: fetchedAt, HasMore: list.HasMore}
		for _, w := range list.Data {
			if err := c.moreItems(ctx, w); err != nil {
				return err
			}
			s, err := w.subscription()
			if err != nil {
				return err
			}
			page.Subscriptions = append(page.Subscriptions, s)
		}
		if err := fn(page); err != nil {
			return err
		}
		if !list.HasMore || len(list.Data) == 0 {
			return nil
		}
		after = list.Data[len(list.Data)-1].ID
	}
}

// moreItems fetches the rest of a subscription's items when the embedded list has more (over 10 items).
func (c *Client) moreItems(ctx context.Context, w *wireSubscription) error {
	for w.Items.HasMore && len(w.Items.Data) > 0 {
		q := &form.Values{}
		q.Add("subscription", w.ID)
		q.Add("limit", "100")
		q.Add("starting_after", w.Items.Data[len(w.Items.Data)-1].ID)
		var more wireItemList
		if err := c.call(ctx, "subscription_items.list", http.MethodGet, "/v1/subscription_items", q, &more); err != nil {
			return err
		}
		w.Items.Data = append(w.Items.Data, more.Data...)
		w.Items.HasMore = more.HasMore && len(more.Data) > 0
	}
	return nil
}

// call makes one API request, waiting for the rate limit, retrying what can be retried.
func (c *Client) call(ctx context.Context, op, method, path string, q *form.Values, v stripe.LastResponseSetter) error {
	for attempt := 1; ; attempt++ {
		if err := c.wait(ctx); err != nil {
			return err
		}
		err := c.backend.CallRaw(method, path, c.key, q, &stripe.Params{Context: ctx}, v)
		if err == nil {
			return nil
		}
		if c.opt.OnError != nil {
			c.opt.OnError(op, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay, retry := c.retryAfter(err, attempt)
		if !retry || attempt >= c.opt.MaxAttempts {
			return fmt.Errorf("stripe %s %s: %w", method, path, err)
		}
		if IsRateLimited(err) {
			c.pause(delay) // everyone waits, not only this request
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// wait blocks until a pause after a 429 has passed and the rate limit allows a request.
func (c *Client) wait(ctx context.Context) error {
	c.mu.Lock()
	until := c.pauseUntil
	c.mu.Unlock()
	if d := time.Until(until); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return c.limiter.Wait(ctx)
}

func (c *Client) pause(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until := time.Now().Add(d); until.After(c.pauseUntil) {
		c.pauseUntil = until
	}
}

// retryAfter says whether err is worth another attempt and after how long: a 429 after its Retry-After (or the
// backoff when it has none), 409 and 5xx answers and network errors after the backoff; other answers never.
func (c *Client) retryAfter(err error, attempt int) (time.Duration, bool) {
	backoff := c.opt.MinBackoff << min(attempt-1, 16)
	if backoff > c.opt.MaxBackoff || backoff <= 0 {
		backoff = c.opt.MaxBackoff
	}
	backoff = backoff/2 + rand.N(backoff/2+1) // jitter: replicas do not retry in step
	var se *stripe.Error
	if !errors.As(err, &se) {
		return backoff, true // network error, or an answer that is not Stripe's JSON
	}
	switch code := se.HTTPStatusCode; {
	case code == http.StatusTooManyRequests:
		if se.LastResponse != nil {
			if secs, perr := strconv.Atoi(se.LastResponse.Header.Get("Retry-After")); perr == nil && secs >= 0 {
				return min(time.Duration(secs)*time.Second, c.opt.MaxBackoff), true
			}
		}
		return backoff, true
	case code == http.StatusConflict, code >= 500:
		return backoff, true
	}
	return 0, false
}

// IsRateLimited reports whether err is Stripe's 429.
func IsRateLimited(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode == http.StatusTooManyRequests
}

// IsAuthError reports whether err is Stripe's 401 or 403: the API key is wrong, revoked or lacks a permission.
func IsAuthError(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && (se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden)
}

// IsNotFound reports whether err is Stripe's 404 (resource_missing).
func IsNotFound(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound
}

// errorClass is the label of a failed request in metrics: the HTTP status, or "network".
func errorClass(err error) string {
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode != 0 {
		return strconv.Itoa(se.HTTPStatusCode)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	return "network"
}
