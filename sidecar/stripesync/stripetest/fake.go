// Package stripetest gives tests a Stripe to talk to: Fake, an in-process Stripe API that keeps state, so tests
// can change a subscription and send the webhook afterwards, and renders its objects in the 2023-10-16 shape
// (the one stripe-go v76 pins) or the newest shape (periods on subscription items); StripeMock, Stripe's own
// stripe-mock (stateless, newest API shape) started on free ports; and signed webhook events.
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

// The API versions whose shapes Fake renders: the one stripe-go v76 pins, and the newest, where the billing
// period moved from the subscription to its items (2025-03-31.basil and later) and invoices name their
// subscription under parent.subscription_details.
const (
	APIVersion2023 = "2023-10-16"
	APIVersionNew  = "2025-09-30.clover"
)

// Subscription is a subscription held by Fake.
type Subscription struct {
	ID string
	// Account is the connected account (acct_...) the subscription lives in; "" = the platform's own. Fake
	// serves it only to requests with that Stripe-Account header.
	Account           string
	Customer          string
	Status            string
	Items             []Item
	PeriodStart       int64
	PeriodEnd         int64
	CancelAtPeriodEnd bool
	Created           int64
	// PauseBehavior is pause_collection.behavior (void, keep_as_draft, mark_uncollectible); "" = not paused.
	PauseBehavior  string
	PauseResumesAt int64 // pause_collection.resumes_at; 0 = none
	TrialStart     int64
	TrialEnd       int64
	// DefaultPaymentMethod is the subscription's default_payment_method (pm_...); "" = none.
	DefaultPaymentMethod string
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
	// DefaultPaymentMethod is invoice_settings.default_payment_method; "" = none.
	DefaultPaymentMethod string
	Deleted              bool
}

// CheckoutSession is a Checkout Session held by Fake.
type CheckoutSession struct {
	ID                string
	Account           string // as Subscription.Account
	ClientReferenceID string
	Customer          string
	// CustomerEmail is customer_email: the address Checkout prefills when there is no customer.
	CustomerEmail string
	Subscription  string
	// Invoice is the invoice of a payment-mode session that created one (invoice_creation).
	Invoice       string
	Mode          string // default "subscription"
	Status        string // default "complete"
	PaymentStatus string // default "paid" when complete, "unpaid" otherwise
	// Lines are the session's line items (a price and its quantity each).
	Lines []Line
	// Metadata is the session's own metadata.
	Metadata   map[string]string
	SuccessURL string
	CancelURL  string
	// URL is where the customer pays; Fake sets it for the sessions it creates.
	URL string
	// IdempotencyKey is the Idempotency-Key of the request that created it ("" for PutCheckoutSession's).
	IdempotencyKey string
}

// Line is a line item of a Checkout Session or an invoice.
type Line struct {
	Price    string
	Quantity int64
}

// InvoiceRecord is an invoice held by Fake.
type InvoiceRecord struct {
	ID           string
	Account      string // as Subscription.Account
	Customer     string
	Status       string // default "paid"
	Subscription string // "" = an invoice of no subscription
	Lines        []Line
}

// PortalSession is a Billing Portal session Fake created.
type PortalSession struct {
	ID, Customer, ReturnURL, URL string
}

// Request is one request Fake answered.
type Request struct {
	Method, Path string
	Query        string
	Account      string // the Stripe-Account header
	At           time.Time
	Status       int
}

// Fake is a stateful Stripe API for tests.
type Fake struct {
	URL string

	mu         sync.Mutex
	apiVersion string
	subs       map[string]*Subscription // by account/id
	customers  map[string]*Customer
	sessions   map[string]*CheckoutSession // by account/id
	invoices   map[string]*InvoiceRecord   // by account/id
	portals    []PortalSession
	created    int               // sessions created, for their ids
	idem       map[string]string // Idempotency-Key -> the id of the session it created
	requests   []Request
	failures   []failure
	holds      []*hold
}

type failure struct {
	status     int
	retryAfter string // "" = no header
	path       string // "" = any
	exact      bool   // path must equal, not only start the request's path
	raw        string // a body that is not Stripe's JSON; "" = Stripe's error JSON
}

type hold struct {
	path    string
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
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
		apiVersion: APIVersion2023,
		subs:       map[string]*Subscription{},
		customers:  map[string]*Customer{},
		sessions:   map[string]*CheckoutSession{},
		invoices:   map[string]*InvoiceRecord{},
		idem:       map[string]string{},
	}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = srv.URL
	return f, func() {
		f.mu.Lock()
		for _, h := range f.holds {
			h.once.Do(func() { close(h.release) })
		}
		f.mu.Unlock()
		srv.Close()
	}
}

// SetAPIVersion makes Fake render every object in the shape of version (APIVersion2023 or APIVersionNew),
// whatever Stripe-Version the request asks for, as a proxy or stripe-mock would.
func (f *Fake) SetAPIVersion(version string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apiVersion = version
}

func key(account, id string) string { return account + "/" + id }

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
	f.subs[key(s.Account, s.ID)] = &s
}

// UpdateSubscription changes a platform subscription in place.
func (f *Fake) UpdateSubscription(id string, change func(*Subscription)) {
	f.UpdateSubscriptionIn("", id, change)
}

// UpdateSubscriptionIn changes a subscription of a connected account ("" = the platform's) in place.
func (f *Fake) UpdateSubscriptionIn(account, id string, change func(*Subscription)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f.subs[key(account, id)])
}

// SetStatus changes a platform subscription's status.
func (f *Fake) SetStatus(id, status string) {
	f.UpdateSubscription(id, func(s *Subscription) { s.Status = status })
}

// DeleteSubscription removes a subscription altogether: Stripe answers 404 for it from now on.
func (f *Fake) DeleteSubscription(account, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, key(account, id))
}

// PutCustomer creates or replaces a customer.
func (f *Fake) PutCustomer(c Customer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.customers[c.ID] = &c
}

// DeleteCustomer deletes a customer as Stripe does: the customer is rendered {"id", "deleted": true} and its
// subscriptions are canceled (they stay retrievable).
func (f *Fake) DeleteCustomer(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.customers[id] = &Customer{ID: id, Deleted: true}
	for _, s := range f.subs {
		if s.Customer == id && s.Status != "canceled" && s.Status != "incomplete_expired" {
			s.Status = "canceled"
		}
	}
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
	if s.PaymentStatus == "" {
		s.PaymentStatus = map[bool]string{true: "paid", false: "unpaid"}[s.Status == "complete"]
	}
	s.Lines = append([]Line(nil), s.Lines...)
	f.sessions[key(s.Account, s.ID)] = &s
}

// CheckoutSession returns a copy of a session (the platform's), and whether it exists.
func (f *Fake) CheckoutSession(id string) (CheckoutSession, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs, ok := f.sessions[key("", id)]
	if !ok {
		return CheckoutSession{}, false
	}
	return *cs, true
}

// CreatedSessions returns the Checkout Sessions created through the API (POST /v1/checkout/sessions), oldest
// first.
func (f *Fake) CreatedSessions() []CheckoutSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []CheckoutSession
	for i := 1; i <= f.created; i++ {
		if cs, ok := f.sessions[key("", fmt.Sprintf("cs_test_fake%d", i))]; ok {
			out = append(out, *cs)
		}
	}
	return out
}

// CompleteCheckoutSession plays the customer paying a subscription-mode session created through the API: the
// Stripe customer (customerID, created unless it exists, with the session's email) gets an active subscription
// of the session's prices (with product), and the session is complete. It returns the session.
func (f *Fake) CompleteCheckoutSession(id, customerID, subscriptionID, product string) CheckoutSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := f.sessions[key("", id)]
	if cs.Customer != "" {
		customerID = cs.Customer
	}
	if _, ok := f.customers[customerID]; !ok {
		f.customers[customerID] = &Customer{ID: customerID}
	}
	now := time.Now().Unix()
	sub := &Subscription{ID: subscriptionID, Customer: customerID, Status: "active", Created: now, PeriodStart: now,
		PeriodEnd: time.Unix(now, 0).AddDate(0, 1, 0).Unix()}
	for _, l := range cs.Lines {
		sub.Items = append(sub.Items, Item{Price: l.Price, Product: product})
	}
	f.subs[key("", subscriptionID)] = sub
	cs.Customer, cs.Subscription, cs.Status, cs.PaymentStatus, cs.URL = customerID, subscriptionID, "complete", "paid", ""
	return *cs
}

// PortalSessions returns the Billing Portal sessions created so far.
func (f *Fake) PortalSessions() []PortalSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]PortalSession(nil), f.portals...)
}

// PutInvoice creates or replaces an invoice.
func (f *Fake) PutInvoice(inv InvoiceRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if inv.Status == "" {
		inv.Status = "paid"
	}
	inv.Lines = append([]Line(nil), inv.Lines...)
	if _, ok := f.customers[inv.Customer]; !ok && inv.Customer != "" {
		f.customers[inv.Customer] = &Customer{ID: inv.Customer}
	}
	f.invoices[key(inv.Account, inv.ID)] = &inv
}

// Fail makes the next n requests whose path starts with path ("" = any) fail with status; a 429 carries
// Retry-After: retryAfter unless it is "".
func (f *Fake) Fail(n int, path string, status int, retryAfter string) {
	f.addFailures(n, failure{status: status, retryAfter: retryAfter, path: path})
}

// FailExact is Fail for requests whose path is path exactly ("/v1/subscriptions" is the listing, not a
// subscription).
func (f *Fake) FailExact(n int, path string, status int, retryAfter string) {
	f.addFailures(n, failure{status: status, retryAfter: retryAfter, path: path, exact: true})
}

// FailRaw makes the next n requests whose path starts with path answer status with body as text/html, as a
// proxy in front of Stripe does.
func (f *Fake) FailRaw(n int, path string, status int, body string) {
	f.addFailures(n, failure{status: status, path: path, raw: body})
}

func (f *Fake) addFailures(n int, fl failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.failures = append(f.failures, fl)
	}
}

// Hold makes the next request whose path is path wait until release is called; arrived is closed when that
// request has come (and is being held). Requests answered while held are not held.
func (f *Fake) Hold(path string) (arrived <-chan struct{}, release func()) {
	h := &hold{path: path, arrived: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	f.holds = append(f.holds, h)
	f.mu.Unlock()
	return h.arrived, func() { h.once.Do(func() { close(h.release) }) }
}

// Requests returns the requests answered so far.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// Count is the number of requests answered so far whose path is path.
func (f *Fake) Count(path string) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	for i, h := range f.holds {
		if h.path == r.URL.Path {
			f.holds = append(f.holds[:i], f.holds[i+1:]...)
			f.mu.Unlock()
			close(h.arrived)
			<-h.release
			f.mu.Lock()
			break
		}
	}
	defer f.mu.Unlock()
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Account: r.Header.Get("Stripe-Account"), At: time.Now()}
	status, body, header := f.answer(r)
	req.Status = status
	f.requests = append(f.requests, req)
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Request-Id", fmt.Sprintf("req_fake%d", len(f.requests)))
	if raw, ok := body.(rawBody); ok {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(raw))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

type rawBody string

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
		if fl.path != "" && (fl.exact && r.URL.Path != fl.path || !fl.exact && !strings.HasPrefix(r.URL.Path, fl.path)) {
			continue
		}
		f.failures = append(f.failures[:i], f.failures[i+1:]...)
		if fl.raw != "" {
			return fl.status, rawBody(fl.raw), nil
		}
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
	account := r.Header.Get("Stripe-Account")
	if r.Method == http.MethodPost {
		return f.post(r, account)
	}
	if r.Method != http.MethodGet {
		return stripeError(http.StatusMethodNotAllowed, "invalid_request_error", "", "fake: GET and POST only")
	}
	q := r.URL.Query()
	expand := q["expand[]"]
	switch path := r.URL.Path; {
	case strings.HasPrefix(path, "/v1/checkout/sessions/") && strings.HasSuffix(path, "/line_items"):
		cs, ok := f.sessions[key(account, strings.TrimSuffix(strings.TrimPrefix(path, "/v1/checkout/sessions/"), "/line_items"))]
		if !ok {
			return stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing", "No such checkout.session")
		}
		return f.linePage(cs.ID, path, cs.Lines, q, false)
	case strings.HasPrefix(path, "/v1/invoices/") && strings.HasSuffix(path, "/lines"):
		inv, ok := f.invoices[key(account, strings.TrimSuffix(strings.TrimPrefix(path, "/v1/invoices/"), "/lines"))]
		if !ok {
			return stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing", "No such invoice")
		}
		return f.linePage(inv.ID, path, inv.Lines, q, true)
	case strings.HasPrefix(path, "/v1/invoices/"):
		inv, ok := f.invoices[key(account, strings.TrimPrefix(path, "/v1/invoices/"))]
		if !ok {
			return stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing", "No such invoice")
		}
		return http.StatusOK, f.renderInvoice(inv, contains(expand, "customer")), nil
	case path == "/v1/subscriptions":
		return f.list(account, q)
	case strings.HasPrefix(path, "/v1/subscriptions/"):
		s, ok := f.subs[key(account, strings.TrimPrefix(path, "/v1/subscriptions/"))]
		if !ok {
			return stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing", "No such subscription")
		}
		return http.StatusOK, f.render(s, contains(expand, "customer")), nil
	case strings.HasPrefix(path, "/v1/checkout/sessions/"):
		cs, ok := f.sessions[key(account, strings.TrimPrefix(path, "/v1/checkout/sessions/"))]
		if !ok {
			return stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing", "No such checkout.session")
		}
		return http.StatusOK, f.renderSession(cs, contains(expand, "customer"), contains(expand, "line_items")), nil
	}
	return stripeError(http.StatusNotFound, "invalid_request_error", "", "Unrecognized request URL")
}

func (f *Fake) list(account string, q map[string][]string) (int, any, map[string]string) {
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
	// newest first, as Stripe lists; only the account the request is made for
	all := make([]*Subscription, 0, len(f.subs))
	for _, s := range f.subs {
		if s.Account == account {
			all = append(all, s)
		}
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

// render gives a subscription in the shape of the fake's API version: 2023-10-16 has the period on the
// subscription and none on its items; the newest has it on each item only.
func (f *Fake) render(s *Subscription, expandCustomer bool) map[string]any {
	newest := f.apiVersion != APIVersion2023
	var customer any = s.Customer
	if expandCustomer {
		c := f.customers[s.Customer]
		switch {
		case c != nil && c.Deleted:
			customer = map[string]any{"id": s.Customer, "object": "customer", "deleted": true}
		default:
			md := map[string]string{}
			var pm any
			if c != nil {
				for k, v := range c.Metadata {
					md[k] = v
				}
				pm = nullable(c.DefaultPaymentMethod)
			}
			customer = map[string]any{"id": s.Customer, "object": "customer", "metadata": md,
				"default_source": nil, "invoice_settings": map[string]any{"default_payment_method": pm}}
		}
	}
	items := []any{}
	for i, it := range s.Items {
		item := map[string]any{
			"id": fmt.Sprintf("si_%s_%d", strings.TrimPrefix(s.ID, "sub_"), i), "object": "subscription_item",
			"price": map[string]any{"id": it.Price, "object": "price", "product": it.Product},
		}
		if newest {
			item["current_period_start"], item["current_period_end"] = s.PeriodStart, s.PeriodEnd
		}
		items = append(items, item)
	}
	var pause any
	if s.PauseBehavior != "" {
		pause = map[string]any{"behavior": s.PauseBehavior, "resumes_at": nullableInt(s.PauseResumesAt)}
	}
	out := map[string]any{
		"id": s.ID, "object": "subscription", "customer": customer, "status": s.Status,
		"created": s.Created, "cancel_at_period_end": s.CancelAtPeriodEnd,
		"pause_collection": pause, "trial_start": nullableInt(s.TrialStart), "trial_end": nullableInt(s.TrialEnd),
		"default_payment_method": nullable(s.DefaultPaymentMethod), "default_source": nil,
		"items": map[string]any{"object": "list", "data": items, "has_more": false,
			"url": "/v1/subscription_items?subscription=" + s.ID},
	}
	if !newest {
		out["current_period_start"], out["current_period_end"] = s.PeriodStart, s.PeriodEnd
	}
	return out
}

// embeddedLines is how many lines Stripe embeds in an object before has_more.
const embeddedLines = 10

func (f *Fake) customerObject(id string) any {
	if id == "" {
		return nil
	}
	c := f.customers[id]
	if c != nil && c.Deleted {
		return map[string]any{"id": id, "object": "customer", "deleted": true}
	}
	md := map[string]string{}
	var pm any
	if c != nil {
		for k, v := range c.Metadata {
			md[k] = v
		}
		pm = nullable(c.DefaultPaymentMethod)
	}
	return map[string]any{"id": id, "object": "customer", "metadata": md,
		"default_source": nil, "invoice_settings": map[string]any{"default_payment_method": pm}}
}

// renderLine gives a line item: a Checkout Session's (price object) or an invoice's in the fake's shape (price
// object on 2023-10-16, pricing.price_details.price on the newest).
func (f *Fake) renderLine(owner string, i int, l Line, invoice bool) map[string]any {
	id := fmt.Sprintf("li_%s_%d", strings.TrimPrefix(strings.TrimPrefix(owner, "cs_"), "in_"), i)
	out := map[string]any{"id": id, "quantity": l.Quantity}
	if invoice {
		out["object"] = "line_item"
		if f.apiVersion != APIVersion2023 {
			out["pricing"] = map[string]any{"type": "price_details", "price_details": map[string]any{"price": l.Price, "product": "prod_x"}}
			return out
		}
	} else {
		out["object"] = "item"
	}
	out["price"] = map[string]any{"id": l.Price, "object": "price"}
	return out
}

func (f *Fake) lineList(owner, url string, lines []Line, invoice bool) map[string]any {
	data := []any{}
	for i, l := range lines {
		if i == embeddedLines {
			break
		}
		data = append(data, f.renderLine(owner, i, l, invoice))
	}
	return map[string]any{"object": "list", "url": url, "has_more": len(lines) > embeddedLines, "data": data}
}

func (f *Fake) linePage(owner, url string, lines []Line, q map[string][]string, invoice bool) (int, any, map[string]string) {
	limit, start := 10, 0
	if v := q["limit"]; len(v) > 0 {
		limit, _ = strconv.Atoi(v[0])
	}
	if v := q["starting_after"]; len(v) > 0 {
		start = -1
		for i := range lines {
			if f.renderLine(owner, i, lines[i], invoice)["id"] == v[0] {
				start = i + 1
			}
		}
		if start < 0 {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "resource_missing", "No such line: starting_after")
		}
	}
	end := min(start+max(limit, 1), len(lines))
	data := []any{}
	for i := start; i < end; i++ {
		data = append(data, f.renderLine(owner, i, lines[i], invoice))
	}
	return http.StatusOK, map[string]any{"object": "list", "url": url, "has_more": end < len(lines), "data": data}, nil
}

func (f *Fake) renderSession(cs *CheckoutSession, expandCustomer, expandLines bool) map[string]any {
	var customer any = nullable(cs.Customer)
	if expandCustomer {
		customer = f.customerObject(cs.Customer)
	}
	md := map[string]string{}
	for k, v := range cs.Metadata {
		md[k] = v
	}
	out := map[string]any{
		"id": cs.ID, "object": "checkout.session", "client_reference_id": nullable(cs.ClientReferenceID),
		"customer": customer, "customer_email": nullable(cs.CustomerEmail), "subscription": nullable(cs.Subscription),
		"invoice": nullable(cs.Invoice), "mode": cs.Mode, "status": cs.Status, "payment_status": cs.PaymentStatus,
		"metadata": md, "url": nullable(cs.URL), "success_url": nullable(cs.SuccessURL), "cancel_url": nullable(cs.CancelURL),
	}
	if expandLines {
		out["line_items"] = f.lineList(cs.ID, "/v1/checkout/sessions/"+cs.ID+"/line_items", cs.Lines, false)
	}
	return out
}

// renderInvoice gives an invoice in the fake's shape: invoice.subscription on 2023-10-16,
// invoice.parent.subscription_details.subscription on the newest.
func (f *Fake) renderInvoice(inv *InvoiceRecord, expandCustomer bool) map[string]any {
	var customer any = nullable(inv.Customer)
	if expandCustomer {
		customer = f.customerObject(inv.Customer)
	}
	out := map[string]any{"id": inv.ID, "object": "invoice", "customer": customer, "status": inv.Status,
		"lines": f.lineList(inv.ID, "/v1/invoices/"+inv.ID+"/lines", inv.Lines, true)}
	if f.apiVersion == APIVersion2023 {
		out["subscription"] = nullable(inv.Subscription)
	} else if inv.Subscription != "" {
		out["parent"] = map[string]any{"type": "subscription_details",
			"subscription_details": map[string]any{"subscription": inv.Subscription}}
	} else {
		out["parent"] = nil
	}
	return out
}

// post answers the requests that create: Checkout Sessions and Billing Portal sessions.
func (f *Fake) post(r *http.Request, account string) (int, any, map[string]string) {
	if err := r.ParseForm(); err != nil {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "", "fake: bad form")
	}
	form := r.PostForm
	switch r.URL.Path {
	case "/v1/checkout/sessions":
		idem := r.Header.Get("Idempotency-Key")
		if id, ok := f.idem[idem]; ok && idem != "" {
			return http.StatusOK, f.renderSession(f.sessions[key(account, id)], false, false), nil
		}
		mode := form.Get("mode")
		if mode != "subscription" && mode != "payment" {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_empty", "Missing required param: mode.")
		}
		if form.Get("success_url") == "" {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_missing", "Missing required param: success_url.")
		}
		if form.Get("customer") != "" && form.Get("customer_email") != "" {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "", "You may only specify one of these parameters: customer, customer_email.")
		}
		f.created++
		cs := &CheckoutSession{
			ID: fmt.Sprintf("cs_test_fake%d", f.created), Account: account, Mode: mode, Status: "open", PaymentStatus: "unpaid",
			ClientReferenceID: form.Get("client_reference_id"), Customer: form.Get("customer"),
			CustomerEmail: form.Get("customer_email"), SuccessURL: form.Get("success_url"), CancelURL: form.Get("cancel_url"),
			Metadata: map[string]string{}, IdempotencyKey: idem,
		}
		for i := 0; ; i++ {
			price := form.Get(fmt.Sprintf("line_items[%d][price]", i))
			if price == "" {
				break
			}
			qty, _ := strconv.ParseInt(form.Get(fmt.Sprintf("line_items[%d][quantity]", i)), 10, 64)
			cs.Lines = append(cs.Lines, Line{Price: price, Quantity: qty})
		}
		if len(cs.Lines) == 0 {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "", "fake: line_items are required")
		}
		for k, v := range form {
			if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
				cs.Metadata[strings.TrimSuffix(name, "]")] = v[0]
			}
		}
		cs.URL = f.URL + "/pay/" + cs.ID
		f.sessions[key(account, cs.ID)] = cs
		if idem != "" {
			f.idem[idem] = cs.ID
		}
		return http.StatusOK, f.renderSession(cs, false, false), nil
	case "/v1/billing_portal/sessions":
		customer := form.Get("customer")
		if _, ok := f.customers[customer]; !ok {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "resource_missing", "No such customer: "+customer)
		}
		ps := PortalSession{ID: fmt.Sprintf("bps_fake%d", len(f.portals)+1), Customer: customer, ReturnURL: form.Get("return_url")}
		ps.URL = f.URL + "/portal/" + ps.ID
		f.portals = append(f.portals, ps)
		return http.StatusOK, map[string]any{"id": ps.ID, "object": "billing_portal.session", "customer": customer,
			"return_url": nullable(ps.ReturnURL), "url": ps.URL}, nil
	}
	return stripeError(http.StatusNotFound, "invalid_request_error", "", "Unrecognized request URL")
}

// Invoice is the data.object of an invoice event naming subscription, in the shape of version: 2023-10-16 has
// invoice.subscription, the newest invoice.parent.subscription_details.subscription.
func Invoice(id, subscription, version string) map[string]any {
	if version == APIVersion2023 {
		return map[string]any{"id": id, "object": "invoice", "subscription": subscription}
	}
	return map[string]any{"id": id, "object": "invoice",
		"parent": map[string]any{"type": "subscription_details",
			"subscription_details": map[string]any{"subscription": subscription}}}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullableInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
