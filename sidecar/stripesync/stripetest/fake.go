// Package stripetest gives tests a Stripe to talk to: Fake, an in-process Stripe API in the 2023-10-16 shape
// (the one stripe-go v76 pins) that keeps state, so tests can change a subscription and send the webhook
// afterwards; StripeMock, Stripe's own stripe-mock (stateless, newest API shape) started on free ports; and
// signed webhook events.
package stripetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Key is the API key the fakes accept.
const Key = "sk_test_tollgate"

// Subscription is a subscription held by Fake.
type Subscription struct {
	ID                string
	Customer          string
	Status            string
	Items             []Item
	PeriodStart       int64
	PeriodEnd         int64
	CancelAtPeriodEnd bool
	Created           int64
}

// Item is a subscription item: a price of a product.
type Item struct {
	Price   string
	Product string
}

// Customer is a Stripe customer held by Fake.
type Customer struct {
	ID       string
	Metadata map[string]string
}

// CheckoutSession is a Checkout Session held by Fake.
type CheckoutSession struct {
	ID                string
	ClientReferenceID string
	Customer          string
	Subscription      string
	Mode              string // default "subscription"
	Status            string // default "complete"
}

// Request is one request Fake answered.
type Request struct {
	Method, Path string
	Query        string
	At           time.Time
	Status       int
}

// Fake is a stateful Stripe API for tests.
type Fake struct {
	URL string

	mu        sync.Mutex
	subs      map[string]*Subscription
	customers map[string]*Customer
	sessions  map[string]*CheckoutSession
	requests  []Request
	failures  []failure
}

type failure struct {
	status     int
	retryAfter string // "" = no header
	path       string // "" = any
}

// NewFake starts a Fake, stopped when the test ends.
func NewFake(t testing.TB) *Fake {
	t.Helper()
	f, stop := StartFake()
	t.Cleanup(stop)
	return f
}

// StartFake serves a Fake outside a test (tollgate demo); stop shuts it down.
func StartFake() (f *Fake, stop func()) {
	f = &Fake{
		subs:      map[string]*Subscription{},
		customers: map[string]*Customer{},
		sessions:  map[string]*CheckoutSession{},
	}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = srv.URL
	return f, srv.Close
}

// PutSubscription creates or replaces a subscription (a copy is kept). Created defaults to now, the period to
// a month from Created.
func (f *Fake) PutSubscription(s Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Created == 0 {
		s.Created = time.Now().Unix()
	}
	if s.PeriodStart == 0 {
		s.PeriodStart = s.Created
	}
	if s.PeriodEnd == 0 {
		s.PeriodEnd = time.Unix(s.PeriodStart, 0).AddDate(0, 1, 0).Unix()
	}
	if _, ok := f.customers[s.Customer]; !ok {
		f.customers[s.Customer] = &Customer{ID: s.Customer}
	}
	s.Items = append([]Item(nil), s.Items...)
	f.subs[s.ID] = &s
}

// SetStatus changes a subscription's status.
func (f *Fake) SetStatus(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[id].Status = status
}

// PutCustomer creates or replaces a customer.
func (f *Fake) PutCustomer(c Customer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.customers[c.ID] = &c
}

// PutCheckoutSession creates or replaces a Checkout Session.
func (f *Fake) PutCheckoutSession(s CheckoutSession) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Mode == "" {
		s.Mode = "subscription"
	}
	if s.Status == "" {
		s.Status = "complete"
	}
	f.sessions[s.ID] = &s
}

// Fail makes the next n requests whose path starts with path ("" = any) fail with status; a 429 carries
// Retry-After: retryAfter unless it is "".
func (f *Fake) Fail(n int, path string, status int, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.failures = append(f.failures, failure{status: status, retryAfter: retryAfter, path: path})
	}
}

// Requests returns the requests answered so far.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, At: time.Now()}
	status, body, header := f.answer(r)
	req.Status = status
	f.requests = append(f.requests, req)
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", fmt.Sprintf("req_fake%d", len(f.requests)))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func stripeError(status int, typ, code, msg string) (int, any, map[string]string) {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	return status, map[string]any{"error": e}, nil
}

func (f *Fake) answer(r *http.Request) (int, any, map[string]string) {
	if r.Header.Get("Authorization") != "Bearer "+Key {
		return stripeError(http.StatusUnauthorized, "invalid_request_error", "", "Invalid API Key provided")
	}
	for i, fl := range f.failures {
		if fl.path != "" && !strings.HasPrefix(r.URL.Path, fl.path) {
			continue
		}
		f.failures = append(f.failures[:i], f.failures[i+1:]...)
		status, body, _ := stripeError(fl.status, "api_error", "", "injected failure")
		if fl.status == http.StatusTooManyRequests {
			status, body, _ = stripeError(fl.status, "invalid_request_error", "rate_limit", "Too many requests")
		}
		var h map[string]string
		if fl.retryAfter != "" {
			h = map[string]string{"Retry-After": fl.retryAfter}
		}
		return status, body, h
	}
	if r.Method != http.MethodGet {
		return stripeError(http.StatusMethodNotAllowed, "invalid_request_error", "", "fake: GET only")
	}
	q := r.URL.Query()
	expand := q["expand[]"]
	switch path := r.URL.Path; {
	case path == "/v1/subscriptions":
		return f.list(q)
	case strings.HasPrefix(path, "/v1/subscriptions/"):
		s, ok := f.subs[strings.TrimPrefix(path, "/v1/subscriptions/")]
		if !ok {
			return stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing", "No such subscription")
		}
		return http.StatusOK, f.render(s, contains(expand, "customer")), nil
	case strings.HasPrefix(path, "/v1/checkout/sessions/"):
		cs, ok := f.sessions[strings.TrimPrefix(path, "/v1/checkout/sessions/")]
		if !ok {
			return stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing", "No such checkout.session")
		}
		return http.StatusOK, map[string]any{
			"id": cs.ID, "object": "checkout.session", "client_reference_id": nullable(cs.ClientReferenceID),
			"customer": nullable(cs.Customer), "subscription": nullable(cs.Subscription), "mode": cs.Mode,
			"status": cs.Status,
		}, nil
	}
	return stripeError(http.StatusNotFound, "invalid_request_error", "", "Unrecognized request URL")
}

func (f *Fake) list(q map[string][]string) (int, any, map[string]string) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if get("status") != "all" {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "", "fake: list with status=all")
	}
	limit := 10
	if l := get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "", "limit must be 1 to 100")
		}
		limit = n
	}
	// newest first, as Stripe lists
	all := make([]*Subscription, 0, len(f.subs))
	for _, s := range f.subs {
		all = append(all, s)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Created != all[j].Created {
			return all[i].Created > all[j].Created
		}
		return all[i].ID > all[j].ID
	})
	start := 0
	if after := get("starting_after"); after != "" {
		start = -1
		for i, s := range all {
			if s.ID == after {
				start = i + 1
			}
		}
		if start < 0 {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "resource_missing", "No such subscription: starting_after")
		}
	}
	end := min(start+limit, len(all))
	data := []any{}
	for _, s := range all[start:end] {
		data = append(data, f.render(s, contains(q["expand[]"], "data.customer")))
	}
	return http.StatusOK, map[string]any{"object": "list", "url": "/v1/subscriptions", "has_more": end < len(all), "data": data}, nil
}

// render gives a subscription in the 2023-10-16 shape: periods on the subscription, none on its items.
func (f *Fake) render(s *Subscription, expandCustomer bool) map[string]any {
	var customer any = s.Customer
	if expandCustomer {
		c := f.customers[s.Customer]
		md := map[string]string{}
		if c != nil {
			for k, v := range c.Metadata {
				md[k] = v
			}
		}
		customer = map[string]any{"id": s.Customer, "object": "customer", "metadata": md}
	}
	items := []any{}
	for i, it := range s.Items {
		items = append(items, map[string]any{
			"id": fmt.Sprintf("si_%s_%d", strings.TrimPrefix(s.ID, "sub_"), i), "object": "subscription_item",
			"price": map[string]any{"id": it.Price, "object": "price", "product": it.Product},
		})
	}
	return map[string]any{
		"id": s.ID, "object": "subscription", "customer": customer, "status": s.Status,
		"created": s.Created, "current_period_start": s.PeriodStart, "current_period_end": s.PeriodEnd,
		"cancel_at_period_end": s.CancelAtPeriodEnd,
		"items": map[string]any{"object": "list", "data": items, "has_more": false,
			"url": "/v1/subscription_items?subscription=" + s.ID},
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
