package stripesync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/form"

	"github.com/tollgate/tollgate/internal/config"
)

// Client reads subscriptions and Checkout Sessions from the Stripe API through stripe-go's client, at most
// RatePerSecond requests per second, retrying 429s (after Retry-After), 5xx answers and network errors with
// backoff.
//
// Requests have two priorities. Webhook re-fetches (Subscription, CheckoutSession) go first: a background
// request (ListSubscriptions, and any request whose context went through Background) waits while a webhook
// request waits for its turn, so reconcile yields its rate budget to webhooks. A 429 pauses background requests
// for its Retry-After, never webhook requests: a webhook request that meets a 429 retries itself after
// Retry-After when its deadline allows, and otherwise fails at once (the webhook answers 502 and Stripe
// retries it).
type Client struct {
	api     *client.API
	backend stripe.Backend
	key     string
	sched   *scheduler
	clock   Clock
	opt     ClientOptions
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
	// Clock paces requests and times retries; nil means the system's clock. Tests pass a fake one.
	Clock Clock
}

// Clock is the time the client paces and retries by.
type Clock interface {
	Now() time.Time
	// After sends on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// NewClient returns a client for the Stripe API.
func NewClient(opt ClientOptions) *Client {
	if opt.RatePerSecond <= 0 {
		opt.RatePerSecond = config.DefaultStripeRatePerSecond
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
	if opt.Clock == nil {
		opt.Clock = systemClock{}
	}
	// the status of every answer reaches call, also when its body is not Stripe's JSON (a proxy's 502 page)
	hc := *opt.HTTPClient
	hc.Transport = statusTransport{base: hc.Transport}
	cfg := &stripe.BackendConfig{
		HTTPClient:        &hc,
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
		sched:   newScheduler(opt.Clock, time.Duration(float64(time.Second)/opt.RatePerSecond)),
		clock:   opt.Clock,
		opt:     opt,
	}
}

// API is the underlying stripe-go client (same backend, key and base URL).
func (c *Client) API() *client.API { return c.api }

type priorityKey struct{}

// Background marks the requests made with ctx as background work (reconcile, resumes): they yield to webhook
// re-fetches and back off alone after a 429.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, priorityKey{}, prioBackground)
}

func priorityOf(ctx context.Context) priority {
	if p, ok := ctx.Value(priorityKey{}).(priority); ok {
		return p
	}
	return prioWebhook
}

// Subscription fetches one subscription with its customer expanded (for metadata.tollgate_customer and its
// default payment method), and every item when it has more than one page of them. account is the connected
// account it lives in (the Stripe-Account header); "" is the platform's own.
func (c *Client) Subscription(ctx context.Context, account, id string) (Subscription, error) {
	var w wireSubscription
	q := &form.Values{}
	q.Add("expand[]", "customer")
	if err := c.call(ctx, "subscriptions.get", http.MethodGet, "/v1/subscriptions/"+id, account, q, &w); err != nil {
		return Subscription{}, err
	}
	if err := c.moreItems(ctx, account, &w); err != nil {
		return Subscription{}, err
	}
	s, err := w.subscription()
	s.Account = account
	return s, err
}

// CheckoutSession fetches one Checkout Session (of the connected account account; "" = the platform's) with its
// customer (for metadata.tollgate_customer) and every line item (top-up packs bought in payment mode).
func (c *Client) CheckoutSession(ctx context.Context, account, id string) (CheckoutSession, error) {
	var w wireCheckoutSession
	q := &form.Values{}
	q.Add("expand[]", "customer")
	q.Add("expand[]", "line_items")
	if err := c.call(ctx, "checkout.sessions.get", http.MethodGet, "/v1/checkout/sessions/"+id, account, q, &w); err != nil {
		return CheckoutSession{}, err
	}
	cs := w.session()
	for more := w.LineItems; more != nil && more.HasMore && len(more.Data) > 0; {
		q := &form.Values{}
		q.Add("limit", "100")
		q.Add("starting_after", more.Data[len(more.Data)-1].ID)
		var page wireLineItems
		if err := c.call(ctx, "checkout.sessions.line_items", http.MethodGet, "/v1/checkout/sessions/"+id+"/line_items", account, q, &page); err != nil {
			return CheckoutSession{}, err
		}
		cs.Lines = append(cs.Lines, page.items()...)
		more = &page
	}
	return cs, nil
}

func (w *wireCheckoutSession) session() CheckoutSession {
	cs := CheckoutSession{
		ID:                w.ID,
		ClientReferenceID: w.ClientReferenceID,
		Customer:          w.Customer.ID,
		Subscription:      w.Subscription.ID,
		Invoice:           w.Invoice.ID,
		Mode:              w.Mode,
		Status:            w.Status,
		PaymentStatus:     w.PaymentStatus,
		URL:               w.URL,
		Metadata:          w.Metadata,
		Lines:             w.LineItems.items(),
	}
	if !w.Customer.Deleted {
		cs.TollgateCustomer = w.Customer.Metadata["tollgate_customer"]
	}
	return cs
}

// Invoice fetches one invoice with its customer and every line (of the connected account account; "" = the
// platform's).
func (c *Client) Invoice(ctx context.Context, account, id string) (Invoice, error) {
	var w wireInvoice
	q := &form.Values{}
	q.Add("expand[]", "customer")
	if err := c.call(ctx, "invoices.get", http.MethodGet, "/v1/invoices/"+id, account, q, &w); err != nil {
		return Invoice{}, err
	}
	inv := Invoice{ID: w.ID, Status: w.Status, Customer: w.Customer.ID, Lines: w.Lines.items(),
		Subscription: w.Subscription.ID}
	if inv.Subscription == "" {
		inv.Subscription = w.Parent.SubscriptionDetails.Subscription.ID
	}
	if !w.Customer.Deleted {
		inv.TollgateCustomer = w.Customer.Metadata["tollgate_customer"]
	}
	for more := &w.Lines; more.HasMore && len(more.Data) > 0; {
		q := &form.Values{}
		q.Add("limit", "100")
		q.Add("starting_after", more.Data[len(more.Data)-1].ID)
		var page wireLineItems
		if err := c.call(ctx, "invoices.lines", http.MethodGet, "/v1/invoices/"+id+"/lines", account, q, &page); err != nil {
			return Invoice{}, err
		}
		inv.Lines = append(inv.Lines, page.items()...)
		more = &page
	}
	return inv, nil
}

// Page is one page of a subscription listing.
type Page struct {
	Subscriptions []Subscription
	// FetchedAt is when the request for this page started.
	FetchedAt time.Time
	HasMore   bool
}

// ListSubscriptions lists every subscription of the platform's account (status=all), pageSize at a time (1 to
// 100; 0 means 100) with customers expanded, and calls fn with each page in order. It stops at the first error
// of fn or of Stripe. Its requests are background work (see Background).
func (c *Client) ListSubscriptions(ctx context.Context, pageSize int, fn func(Page) error) error {
	ctx = Background(ctx)
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
		if err := c.call(ctx, "subscriptions.list", http.MethodGet, "/v1/subscriptions", "", q, &list); err != nil {
			return err
		}
		page := Page{FetchedAt: fetchedAt, HasMore: list.HasMore}
		for _, w := range list.Data {
			if err := c.moreItems(ctx, "", w); err != nil {
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
func (c *Client) moreItems(ctx context.Context, account string, w *wireSubscription) error {
	for w.Items.HasMore && len(w.Items.Data) > 0 {
		q := &form.Values{}
		q.Add("subscription", w.ID)
		q.Add("limit", "100")
		q.Add("starting_after", w.Items.Data[len(w.Items.Data)-1].ID)
		var more wireItemList
		if err := c.call(ctx, "subscription_items.list", http.MethodGet, "/v1/subscription_items", account, q, &more); err != nil {
			return err
		}
		w.Items.Data = append(w.Items.Data, more.Data...)
		w.Items.HasMore = more.HasMore && len(more.Data) > 0
	}
	return nil
}

// CheckoutParams are what tollgate puts in a Checkout Session for an upgrade link (mode subscription).
type CheckoutParams struct {
	// Price is the plan's Stripe price (one of it).
	Price string
	// ClientReferenceID is the app's customer key.
	ClientReferenceID string
	// Customer is the Stripe customer when known; otherwise CustomerEmail prefills the customer's address.
	Customer      string
	CustomerEmail string
	SuccessURL    string
	CancelURL     string
	// Metadata is the session's metadata (tollgate_click, tollgate_email, tollgate_event, tollgate_variant, ...).
	Metadata map[string]string
	// IdempotencyKey makes a retried or repeated creation answer the same session.
	IdempotencyKey string
}

// CreateCheckoutSession creates a Checkout Session in subscription mode and returns it (its URL is where the
// customer pays).
func (c *Client) CreateCheckoutSession(ctx context.Context, p CheckoutParams) (CheckoutSession, error) {
	q := &form.Values{}
	q.Add("mode", "subscription")
	q.Add("line_items[0][price]", p.Price)
	q.Add("line_items[0][quantity]", "1")
	q.Add("client_reference_id", p.ClientReferenceID)
	switch {
	case p.Customer != "":
		q.Add("customer", p.Customer)
	case p.CustomerEmail != "":
		q.Add("customer_email", p.CustomerEmail)
	}
	q.Add("success_url", p.SuccessURL)
	if p.CancelURL != "" {
		q.Add("cancel_url", p.CancelURL)
	}
	keys := make([]string, 0, len(p.Metadata))
	for k := range p.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		q.Add("metadata["+k+"]", p.Metadata[k])
		q.Add("subscription_data[metadata]["+k+"]", p.Metadata[k]) // the subscription remembers where it came from
	}
	var w wireCheckoutSession
	if err := c.callIdempotent(ctx, "checkout.sessions.create", http.MethodPost, "/v1/checkout/sessions", "", p.IdempotencyKey, q, &w); err != nil {
		return CheckoutSession{}, err
	}
	cs := w.session()
	if cs.ID == "" || cs.URL == "" {
		return cs, fmt.Errorf("stripe POST /v1/checkout/sessions: the answer has no id or url")
	}
	return cs, nil
}

type wirePortalSession struct {
	stripe.APIResource
	ID  string `json:"id"`
	URL string `json:"url"`
}

// CreatePortalSession creates a Billing Portal session of a Stripe customer and returns its URL.
func (c *Client) CreatePortalSession(ctx context.Context, customer, returnURL, idempotencyKey string) (string, error) {
	q := &form.Values{}
	q.Add("customer", customer)
	if returnURL != "" {
		q.Add("return_url", returnURL)
	}
	var w wirePortalSession
	if err := c.callIdempotent(ctx, "billing_portal.sessions.create", http.MethodPost, "/v1/billing_portal/sessions", "", idempotencyKey, q, &w); err != nil {
		return "", err
	}
	if w.URL == "" {
		return "", fmt.Errorf("stripe POST /v1/billing_portal/sessions: the answer has no url")
	}
	return w.URL, nil
}

// call makes one API request, waiting for its turn, retrying what can be retried.
func (c *Client) call(ctx context.Context, op, method, path, account string, q *form.Values, v stripe.LastResponseSetter) error {
	return c.callIdempotent(ctx, op, method, path, account, "", q, v)
}

// callIdempotent is call with an Idempotency-Key ("" = none): every attempt of a POST sends the same key, so a
// retry after a lost answer gets the first attempt's object.
func (c *Client) callIdempotent(ctx context.Context, op, method, path, account, idempotencyKey string, q *form.Values, v stripe.LastResponseSetter) error {
	prio := priorityOf(ctx)
	for attempt := 1; ; attempt++ {
		if err := c.sched.acquire(ctx, prio); err != nil {
			return err
		}
		var status int
		params := &stripe.Params{Context: context.WithValue(ctx, statusKey{}, &status)}
		if account != "" {
			params.StripeAccount = stripe.String(account)
		}
		if idempotencyKey != "" {
			params.IdempotencyKey = stripe.String(idempotencyKey)
		}
		err := c.backend.CallRaw(method, path, c.key, q, params, v)
		if err == nil {
			return nil
		}
		var se *stripe.Error
		if status != 0 && !errors.As(err, &se) {
			err = &HTTPError{Status: status, Err: err}
		}
		if c.opt.OnError != nil {
			c.opt.OnError(op, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay, retry := c.retryAfter(err, attempt)
		if !retry || attempt >= c.opt.MaxAttempts {
			return redacted(fmt.Errorf("stripe %s %s: %w", method, path, err))
		}
		if IsRateLimited(err) {
			c.sched.pauseBackground(delay) // reconcile backs off, whoever met the 429
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			// the wait would outlast the webhook's deadline: fail now, Stripe retries the event
			return redacted(fmt.Errorf("stripe %s %s: retry in %s is past the deadline: %w", method, path, delay, err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.clock.After(delay):
		}
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
	var he *HTTPError
	if errors.As(err, &he) {
		switch code := he.Status; {
		case code == http.StatusTooManyRequests, code == http.StatusConflict, code >= 500, code < 300:
			return backoff, true // a 2xx here is an answer that did not decode
		}
		return 0, false
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		return backoff, true // network error
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

// HTTPError is an answer of Stripe (or of something in front of it) whose body is not Stripe's error JSON,
// such as a proxy's 502 page.
type HTTPError struct {
	Status int
	Err    error
}

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d: %v", e.Status, e.Err) }
func (e *HTTPError) Unwrap() error { return e.Err }

// statusKey carries a *int that statusTransport sets to the status of the request's answer.
type statusKey struct{}

type statusTransport struct{ base http.RoundTripper }

func (t statusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if resp != nil {
		if p, ok := req.Context().Value(statusKey{}).(*int); ok {
			*p = resp.StatusCode
		}
	}
	return resp, err
}

// redactedError masks secrets in the text of an upstream error (Stripe's messages, a proxy's page) while
// errors.As still finds the error inside.
type redactedError struct{ err error }

func (e redactedError) Error() string { return config.Redact(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }

func redacted(err error) error { return redactedError{err} }

// IsRateLimited reports whether err is Stripe's 429.
func IsRateLimited(err error) bool {
	var se *stripe.Error
	var he *HTTPError
	return errors.As(err, &se) && se.HTTPStatusCode == http.StatusTooManyRequests ||
		errors.As(err, &he) && he.Status == http.StatusTooManyRequests
}

// IsAuthError reports whether err is Stripe's 401 or 403: the API key is wrong, revoked or lacks a permission.
func IsAuthError(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && (se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden)
}

// IsNotFound reports whether err is Stripe's 404 for an object it does not know (resource_missing). A 404
// without that code (a wrong STRIPE_API_BASE, an unknown URL) is not.
func IsNotFound(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound && se.Code == stripe.ErrorCodeResourceMissing
}

// errorClass is the label of a failed request in metrics: the HTTP status, "invalid_response" for a success
// whose body did not decode, or "network".
func errorClass(err error) string {
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode != 0 {
		return strconv.Itoa(se.HTTPStatusCode)
	}
	var he *HTTPError
	if errors.As(err, &he) {
		if he.Status < 300 {
			return "invalid_response" // a success whose body did not decode
		}
		return strconv.Itoa(he.Status)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	return "network"
}
