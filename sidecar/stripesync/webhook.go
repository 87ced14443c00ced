package stripesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76/webhook"
)

// event is a verified webhook event: what tollgate reads of it.
type event struct {
	ID         string
	Type       string
	APIVersion string
	Created    int64
	// Account is the connected account the event happened in (Connect); "" = the platform's own.
	Account string
	Object  eventObject
}

// What an event type makes tollgate do.
type action int

const (
	ignore             action = iota
	fetchSubscription         // data.object is the subscription
	fetchInvoiceSub           // data.object is an invoice: its subscription
	fetchScheduleSub          // data.object is a subscription schedule: its (released) subscription
	fetchCheckout             // data.object is a Checkout Session: it, then its subscription
	fetchCustomerSubs         // data.object is a deleted customer: its stored subscriptions
	maxEventTypeLength = 100
)

// actions is every event type tollgate acts on; docs/stripe.md lists them.
var actions = map[string]action{
	"customer.subscription.created":                fetchSubscription,
	"customer.subscription.updated":                fetchSubscription,
	"customer.subscription.deleted":                fetchSubscription,
	"customer.subscription.paused":                 fetchSubscription,
	"customer.subscription.resumed":                fetchSubscription,
	"customer.subscription.pending_update_applied": fetchSubscription,
	"customer.subscription.pending_update_expired": fetchSubscription,
	"customer.subscription.trial_will_end":         fetchSubscription, // and the trial prompt
	"checkout.session.completed":                   fetchCheckout,
	"checkout.session.async_payment_succeeded":     fetchCheckout, // a delayed payment (top-up packs)
	"invoice.paid":                                 fetchInvoiceSub,
	"invoice.payment_succeeded":                    fetchInvoiceSub,
	"invoice.payment_failed":                       fetchInvoiceSub,
	"subscription_schedule.aborted":                fetchScheduleSub,
	"subscription_schedule.canceled":               fetchScheduleSub,
	"subscription_schedule.completed":              fetchScheduleSub,
	"subscription_schedule.created":                fetchScheduleSub,
	"subscription_schedule.expiring":               fetchScheduleSub,
	"subscription_schedule.released":               fetchScheduleSub,
	"subscription_schedule.updated":                fetchScheduleSub,
	"customer.deleted":                             fetchCustomerSubs,
}

const eventTrialWillEnd = "customer.subscription.trial_will_end"

// paidInvoiceEvents are the invoice events whose invoice may carry top-up packs: while packs are defined, the
// invoice itself is re-fetched too (also one of no subscription).
var paidInvoiceEvents = map[string]bool{"invoice.paid": true, "invoice.payment_succeeded": true}

// Ids tollgate accepts from an event, and passes into a request path: a prefix and what Stripe's ids are made
// of, at most 255 characters.
var (
	eventIDRE        = regexp.MustCompile(`^evt_[A-Za-z0-9_]{1,251}$`)
	accountIDRE      = regexp.MustCompile(`^acct_[A-Za-z0-9_]{1,250}$`)
	subscriptionIDRE = regexp.MustCompile(`^sub_[A-Za-z0-9_]{1,251}$`)
	sessionIDRE      = regexp.MustCompile(`^cs_[A-Za-z0-9_]{1,252}$`)
	customerIDRE     = regexp.MustCompile(`^cus_[A-Za-z0-9_]{1,251}$`)
	invoiceIDRE      = regexp.MustCompile(`^in_[A-Za-z0-9_]{1,186}$`) // record_stripe_topup keys grants by it (190)
)

// target is what a verified event makes tollgate re-fetch: one object id (checked), or none.
func (ev event) target() (act action, id string, err error) {
	act = actions[ev.Type]
	var re *regexp.Regexp
	switch act {
	case ignore:
		return ignore, "", nil
	case fetchSubscription:
		id, re = ev.Object.ID, subscriptionIDRE
	case fetchInvoiceSub:
		id, re = ev.Object.invoiceSubscription(), subscriptionIDRE
		if id == "" && paidInvoiceEvents[ev.Type] && invoiceIDRE.MatchString(ev.Object.ID) {
			return fetchInvoiceSub, "", nil // a paid invoice of no subscription: it may carry top-up packs
		}
	case fetchScheduleSub:
		id, re = ev.Object.scheduleSubscription(), subscriptionIDRE
	case fetchCheckout:
		id, re = ev.Object.ID, sessionIDRE
	case fetchCustomerSubs:
		id, re = ev.Object.ID, customerIDRE
	}
	if id == "" {
		return ignore, "", nil // an invoice or schedule of no subscription; an object without id
	}
	if !re.MatchString(id) {
		return ignore, "", fmt.Errorf("%s names the object %q, which is not a Stripe id of its kind", ev.Type, truncate(id, 64))
	}
	return act, id, nil
}

// ServeHTTP is POST /webhooks/stripe. Answers: 200 when the event was applied, was a duplicate, or is of a type
// tollgate ignores; 400 for a missing, malformed, wrong or tampered signature, one whose timestamp is more than
// the tolerance in the past or the future, or a signed body that is not an event tollgate can read (an id that
// is not evt_..., an object id of the wrong kind); nothing is written then; 413 for a body over the limit; 405
// for another method; 502 when re-fetching from Stripe failed and 500 when the database failed (Stripe retries
// both); 503 when no webhook secret is configured.
func (s *Syncer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if len(s.secrets) == 0 {
		s.log.Error("stripe webhook received but STRIPE_WEBHOOK_SECRET is not set")
		http.Error(w, "webhook signing secret not configured", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opt.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.reject(w, "too_large", http.StatusRequestEntityTooLarge, err)
			return
		}
		s.reject(w, "unreadable", http.StatusBadRequest, err)
		return
	}
	ev, reason, err := s.verify(body, r.Header.Get("Stripe-Signature"))
	if reason != "" {
		s.reject(w, reason, http.StatusBadRequest, err)
		return
	}
	act, objectID, err := ev.target()
	if err != nil {
		s.reject(w, "bad_object", http.StatusBadRequest, err)
		return
	}
	s.m.received.With(ev.Type).Inc()
	if ev.Created > 0 {
		s.m.lag.With().Observe(max(0, time.Since(time.Unix(ev.Created, 0)).Seconds()))
	}

	// The work finishes even when Stripe hangs up (and during a graceful shutdown): it is idempotent, and
	// abandoning it half-way would only cost a retry.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opt.HandleTimeout)
	defer cancel()
	log := s.log.With("event", ev.ID, "type", ev.Type, "object", ev.Object.ID)
	if ev.Account != "" {
		log = log.With("account", ev.Account)
	}
	outcome, stage, err := s.handle(ctx, ev, act, objectID)
	if err != nil {
		s.m.failed.With(ev.Type, stage).Inc()
		code := http.StatusInternalServerError
		if stage == "stripe" {
			code = http.StatusBadGateway
		}
		log.Error("stripe webhook failed; Stripe will retry it", "stage", stage, "err", err)
		http.Error(w, "could not apply the event; retry later", code)
		return
	}
	switch outcome {
	case "applied":
		s.m.applied.With(ev.Type).Inc()
		log.Info("stripe event applied")
	case "duplicate":
		s.m.duplicate.With(ev.Type).Inc()
		log.Debug("stripe event already applied")
	default:
		s.m.ignored.With(ev.Type).Inc()
		log.Debug("stripe event ignored")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"received":true,"outcome":"`+outcome+`"}`)
}

func (s *Syncer) reject(w http.ResponseWriter, reason string, code int, err error) {
	s.m.rejected.With(reason).Inc()
	s.log.Warn("stripe webhook rejected", "reason", reason, "err", redacted(err))
	http.Error(w, "invalid webhook: "+reason, code)
}

// verify checks the signature with each secret and parses the event; reason is "" when it is valid.
func (s *Syncer) verify(body []byte, header string) (event, string, error) {
	var lastErr error
	for _, secret := range s.secrets {
		err := webhook.ValidatePayloadWithTolerance(body, header, secret, s.opt.Tolerance)
		if err == nil {
			lastErr = nil
			break
		}
		lastErr = err
		if errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrInvalidHeader) || errors.Is(err, webhook.ErrTooOld) {
			break // the same for every secret
		}
	}
	switch {
	case lastErr == nil:
	case errors.Is(lastErr, webhook.ErrNotSigned):
		return event{}, "missing", lastErr
	case errors.Is(lastErr, webhook.ErrInvalidHeader):
		return event{}, "malformed", lastErr
	case errors.Is(lastErr, webhook.ErrTooOld):
		return event{}, "too_old", lastErr
	default:
		return event{}, "mismatch", lastErr
	}
	// stripe-go only rejects old timestamps; a signature from the future is a replay kept for later, or a
	// clock that is wrong
	if ts, ok := signatureTime(header); !ok || ts.After(time.Now().Add(s.opt.Tolerance)) {
		return event{}, "too_new", fmt.Errorf("the signature's timestamp %s is more than %s in the future", ts.UTC().Format(time.RFC3339), s.opt.Tolerance)
	}
	var raw struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		APIVersion string `json:"api_version"`
		Created    int64  `json:"created"`
		Account    string `json:"account"`
		Data       struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return event{}, "bad_json", err
	}
	ev := event{ID: raw.ID, Type: raw.Type, APIVersion: raw.APIVersion, Created: raw.Created, Account: raw.Account}
	if len(raw.Data.Object) > 0 {
		if err := json.Unmarshal(raw.Data.Object, &ev.Object); err != nil {
			return event{}, "bad_json", err
		}
	}
	if ev.ID == "" || ev.Type == "" || len(ev.Type) > maxEventTypeLength {
		return event{}, "bad_json", errors.New("event without id or type")
	}
	if !eventIDRE.MatchString(ev.ID) {
		return event{}, "bad_id", fmt.Errorf("event id %q is not a Stripe event id (evt_...)", truncate(ev.ID, 64))
	}
	if ev.Account != "" && !accountIDRE.MatchString(ev.Account) {
		return event{}, "bad_id", fmt.Errorf("event account %q is not a Stripe account id (acct_...)", truncate(ev.Account, 64))
	}
	if len(ev.APIVersion) > 255 || ev.Created < 0 || ev.Created > maxUnix {
		return event{}, "bad_json", errors.New("event with an over-long api_version or a created time out of range")
	}
	return ev, "", nil
}

// maxUnix is the last second of the year 9999: later times are no Stripe time (and PostgreSQL's range ends).
const maxUnix = 253402300799

// signatureTime is the timestamp of a Stripe-Signature header, read as stripe-go does (the last t=).
func signatureTime(header string) (time.Time, bool) {
	var ts time.Time
	found := false
	for _, pair := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k != "t" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		ts, found = time.Unix(n, 0), true
	}
	return ts, found
}

// truncate cuts s to at most n bytes, for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// fetched is a subscription read from Stripe and when the read started; gone when Stripe answered 404.
type fetched struct {
	id   string
	sub  Subscription
	at   time.Time
	gone bool
}

// handle applies a verified event whose object is objectID: outcome is applied, duplicate or ignored; on
// error, stage is stripe or database.
func (s *Syncer) handle(ctx context.Context, ev event, act action, objectID string) (outcome, stage string, err error) {
	if act == ignore {
		return "ignored", "", nil
	}
	// the subscriptions to re-fetch: known now, or (Checkout) once the session is read
	var subRefs []objectRef
	switch act {
	case fetchSubscription, fetchInvoiceSub, fetchScheduleSub:
		if objectID != "" {
			subRefs = []objectRef{{ev.Account, objectID}}
		}
	case fetchCustomerSubs:
		refs, err := customerSubscriptions(ctx, s.pool, objectID)
		if err != nil {
			return "", "database", err
		}
		subRefs = refs
	}
	var sessionFlight *flight
	if act == fetchCheckout {
		sessionFlight = s.fetches.join("cs/"+ev.Account+"/"+objectID, ev.ID)
		defer s.fetches.release(sessionFlight)
	}
	// a paid invoice is read itself while top-up packs are defined (their lines are on it)
	var invoiceFlight *flight
	if act == fetchInvoiceSub && paidInvoiceEvents[ev.Type] && invoiceIDRE.MatchString(ev.Object.ID) {
		prices, err := topupPrices(ctx, s.pool)
		if err != nil {
			return "", "database", err
		}
		if len(prices) > 0 {
			invoiceFlight = s.fetches.join("in/"+ev.Account+"/"+ev.Object.ID, ev.ID)
			defer s.fetches.release(invoiceFlight)
		}
	}
	if act == fetchInvoiceSub && len(subRefs) == 0 && invoiceFlight == nil {
		return "ignored", "", nil
	}
	flights := make([]*flight, len(subRefs))
	for i, ref := range subRefs {
		flights[i] = s.fetches.join(subKey(ref), ev.ID)
		defer s.fetches.release(flights[i])
	}

	// a redelivery of an applied event costs one query, no Stripe request
	if seen, err := eventSeen(ctx, s.pool, ev.ID); err != nil {
		return "", "database", err
	} else if seen {
		return "duplicate", "", nil
	}

	var session *CheckoutSession
	if sessionFlight != nil {
		v, _, err := s.fetches.result(ctx, sessionFlight, func(ctx context.Context) (any, error) {
			return s.client.CheckoutSession(ctx, ev.Account, objectID)
		})
		switch {
		case IsNotFound(err):
			s.log.Info("stripe checkout session gone: nothing to link", "event", ev.ID, "session", objectID)
		case err != nil:
			return "", "stripe", err
		default:
			cs := v.(CheckoutSession)
			session = &cs
			if cs.Subscription != "" && subscriptionIDRE.MatchString(cs.Subscription) {
				ref := objectRef{ev.Account, cs.Subscription}
				fl := s.fetches.join(subKey(ref), ev.ID)
				defer s.fetches.release(fl)
				subRefs, flights = append(subRefs, ref), append(flights, fl)
			}
		}
	}
	var invoice *Invoice
	if invoiceFlight != nil {
		v, _, err := s.fetches.result(ctx, invoiceFlight, func(ctx context.Context) (any, error) {
			return s.client.Invoice(ctx, ev.Account, ev.Object.ID)
		})
		switch {
		case IsNotFound(err):
			s.log.Info("stripe invoice gone: no top-up packs to grant", "event", ev.ID, "invoice", ev.Object.ID)
		case err != nil:
			return "", "stripe", err
		default:
			inv := v.(Invoice)
			invoice = &inv
		}
	}
	purchases := topupPurchases(session, invoice)
	subs := make([]fetched, 0, len(subRefs))
	for i, ref := range subRefs {
		f, err := s.fetchSubscription(ctx, flights[i], ref)
		if err != nil {
			return "", "stripe", err
		}
		subs = append(subs, f)
	}

	// the event id and its effect commit together: a concurrent duplicate waits in record_stripe_event for
	// this transaction, then finds the event recorded
	var stored []Stored
	var bought []topupResult
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		stored, bought = stored[:0], bought[:0]
		first, err := recordEvent(ctx, tx, ev)
		if err != nil || !first {
			outcome = "duplicate"
			return err
		}
		outcome = "applied"
		if session != nil && validRef(session.ClientReferenceID) && customerIDRE.MatchString(session.Customer) {
			if _, err := linkCheckout(ctx, tx, *session); err != nil {
				return err
			}
		}
		if session != nil && session.Mode == "subscription" && session.Status == "complete" {
			// a session an upgrade link created: the conversion it leads to is the click's (before the
			// subscription is stored below, so that its conversion finds the click)
			if _, err := checkoutClick(ctx, tx, *session); err != nil {
				return err
			}
		}
		for _, p := range purchases {
			r, err := recordTopup(ctx, tx, p)
			if err != nil {
				return err
			}
			bought = append(bought, r)
		}
		for _, f := range subs {
			var st Stored
			var err error
			if f.gone {
				st, err = storeGone(ctx, tx, f.id, f.at)
			} else {
				st, err = storeSubscription(ctx, tx, f.sub, f.at)
			}
			if err != nil {
				return err
			}
			stored = append(stored, st)
			if ev.Type == eventTrialWillEnd && !f.gone {
				if _, err := trialWillEnd(ctx, tx, f.id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return "", "database", err
	}
	for _, r := range bought {
		s.noteTopup(ev, r)
	}
	for i, st := range stored {
		if subs[i].gone {
			s.log.Info("stripe answered 404 for the subscription: it gives no plan any more", "event", ev.ID,
				"subscription", subs[i].id, "customer", st.Customer)
			continue
		}
		s.noteStored(subs[i].sub, st)
	}
	return outcome, "", nil
}

func subKey(ref objectRef) string { return "sub/" + ref.Account + "/" + ref.ID }

// fetchSubscription re-fetches a subscription through its shared fetch; a 404 (resource_missing) is a gone
// subscription, not an error.
func (s *Syncer) fetchSubscription(ctx context.Context, fl *flight, ref objectRef) (fetched, error) {
	v, at, err := s.fetches.result(ctx, fl, func(ctx context.Context) (any, error) {
		return s.client.Subscription(ctx, ref.Account, ref.ID)
	})
	switch {
	case IsNotFound(err):
		return fetched{id: ref.ID, at: at, gone: true}, nil
	case err != nil:
		return fetched{}, err
	}
	return fetched{id: ref.ID, sub: v.(Subscription), at: at}, nil
}

// purchase is a paid Stripe object that may carry top-up packs, as tollgate.record_stripe_topup takes it.
type purchase struct {
	Object           string // the invoice, or the Checkout Session without one
	StripeCustomer   string // "" = none
	TollgateCustomer string // the Stripe customer's metadata.tollgate_customer
	ClientReference  string // the session's client_reference_id
	Lines            []LineItem
}

// topupResult is what tollgate.record_stripe_topup did with a purchase.
type topupResult struct {
	purchase
	Customer         string // "" = nobody is known for it yet
	Matched, Granted int
	Recorded         bool // this delivery recorded the purchase (another event of the same object may have)
}

// maxTopupLines and maxTopupQuantity are record_stripe_topup's bounds; lines beyond them are no pack anyone sells.
const (
	maxTopupLines    = 1000
	maxTopupQuantity = 1_000_000
)

// topupPurchases are the paid objects among a re-fetched Checkout Session and invoice: a complete, paid
// payment-mode session (keyed by its invoice when it has one, so the session's and the invoice's events grant
// once), and a paid invoice.
func topupPurchases(session *CheckoutSession, invoice *Invoice) []purchase {
	var out []purchase
	if cs := session; cs != nil && cs.Mode == "payment" && cs.Paid() && len(cs.Lines) > 0 {
		p := purchase{Object: cs.ID, TollgateCustomer: cs.TollgateCustomer, Lines: topupLines(cs.Lines)}
		if invoiceIDRE.MatchString(cs.Invoice) {
			p.Object = cs.Invoice
		}
		if customerIDRE.MatchString(cs.Customer) {
			p.StripeCustomer = cs.Customer
		}
		if validRef(cs.ClientReferenceID) {
			p.ClientReference = cs.ClientReferenceID
		}
		if len(p.Object) <= 190 && len(p.Lines) > 0 {
			out = append(out, p)
		}
	}
	if inv := invoice; inv != nil && inv.Status == "paid" && len(inv.Lines) > 0 && invoiceIDRE.MatchString(inv.ID) {
		p := purchase{Object: inv.ID, TollgateCustomer: inv.TollgateCustomer, Lines: topupLines(inv.Lines)}
		if customerIDRE.MatchString(inv.Customer) {
			p.StripeCustomer = inv.Customer
		}
		if len(p.Lines) > 0 {
			out = append(out, p)
		}
	}
	for i := range out {
		if !validRef(out[i].TollgateCustomer) {
			out[i].TollgateCustomer = ""
		}
	}
	return out
}

// topupLines keeps the lines record_stripe_topup can take: a price id of at most 255 characters and a
// quantity up to a million, at most 1000 of them.
func topupLines(lines []LineItem) []LineItem {
	var out []LineItem
	for _, l := range lines {
		if l.Price != "" && len(l.Price) <= 255 && l.Quantity >= 1 && l.Quantity <= maxTopupQuantity && len(out) < maxTopupLines {
			out = append(out, l)
		}
	}
	return out
}

// validRef reports whether s can be a customer key: 1 to 255 characters.
func validRef(s string) bool { return s != "" && utf8.RuneCountInString(s) <= 255 }

// noteTopup counts and logs what became of a purchase with top-up packs; one whose customer is unknown is
// counted in tollgate_stripe_topups_unmapped_total and logged, and waits in tollgate.topup_purchases.
func (s *Syncer) noteTopup(ev event, r topupResult) {
	switch {
	case r.Matched == 0:
	case r.Customer == "":
		if r.Recorded {
			s.m.topupsUnmapped.With().Inc()
		}
		s.log.Warn("stripe top-up purchase belongs to no tollgate customer yet: it waits, and is granted once its Stripe customer is linked",
			"event", ev.ID, "object", r.Object, "stripe_customer", r.StripeCustomer, "packs", r.Matched,
			"hint", "link the Stripe customer with tollgate.set_customer (or metadata.tollgate_customer); without a Stripe customer, pass client_reference_id to Checkout")
	case r.Granted > 0:
		s.m.topupsGranted.With().Add(float64(r.Granted))
		s.log.Info("stripe top-up packs granted", "event", ev.ID, "object", r.Object, "customer", r.Customer, "packs", r.Granted)
	}
}
