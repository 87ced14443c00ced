package stripesync

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76/webhook"
)

// event is a verified webhook event: what tollgate reads of it.
type event struct {
	ID         string
	Type       string
	APIVersion string
	Created    int64
	Object     eventObject
}

// What an event type makes tollgate do.
type action int

const (
	ignore             action = iota
	fetchSubscription         // data.object is the subscription
	fetchInvoiceSub           // data.object is an invoice: its subscription
	fetchCheckout             // data.object is a Checkout Session: it, then its subscription
	maxEventTypeLength = 100
)

var actions = map[string]action{
	"customer.subscription.created": fetchSubscription,
	"customer.subscription.updated": fetchSubscription,
	"customer.subscription.deleted": fetchSubscription,
	"customer.subscription.paused":  fetchSubscription,
	"customer.subscription.resumed": fetchSubscription,
	"checkout.session.completed":    fetchCheckout,
	"invoice.paid":                  fetchInvoiceSub,
	"invoice.payment_failed":        fetchInvoiceSub,
}

// ServeHTTP is POST /webhooks/stripe. Answers: 200 when the event was applied, was a duplicate, or is of a type
// tollgate ignores; 400 for a missing, malformed, wrong, tampered or too old signature (nothing is written);
// 413 for a body over the limit; 405 for another method; 502 when re-fetching from Stripe failed and 500 when
// the database failed (Stripe retries both); 503 when no webhook secret is configured.
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
	s.m.received.With(ev.Type).Inc()
	if ev.Created > 0 {
		s.m.lag.With().Observe(max(0, time.Since(time.Unix(ev.Created, 0)).Seconds()))
	}

	// The work finishes even when Stripe hangs up (and during a graceful shutdown): it is idempotent, and
	// abandoning it half-way would only cost a retry.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opt.HandleTimeout)
	defer cancel()
	log := s.log.With("event", ev.ID, "type", ev.Type, "object", ev.Object.ID)
	outcome, stage, err := s.handle(ctx, ev)
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
	s.log.Warn("stripe webhook rejected", "reason", reason, "err", err)
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
	var raw struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		APIVersion string `json:"api_version"`
		Created    int64  `json:"created"`
		Data       struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return event{}, "bad_json", err
	}
	ev := event{ID: raw.ID, Type: raw.Type, APIVersion: raw.APIVersion, Created: raw.Created}
	if len(raw.Data.Object) > 0 {
		if err := json.Unmarshal(raw.Data.Object, &ev.Object); err != nil {
			return event{}, "bad_json", err
		}
	}
	if ev.ID == "" || ev.Type == "" || len(ev.Type) > maxEventTypeLength {
		return event{}, "bad_json", errors.New("event without id or type")
	}
	return ev, "", nil
}

// fetched is an object read from Stripe and when the read started.
type fetched struct {
	sub Subscription
	at  time.Time
}

// handle applies a verified event: outcome is applied, duplicate or ignored; on error, stage is stripe or
// database.
func (s *Syncer) handle(ctx context.Context, ev event) (outcome, stage string, err error) {
	act := actions[ev.Type]
	subID := ""
	switch act {
	case ignore:
		return "ignored", "", nil
	case fetchSubscription:
		subID = ev.Object.ID
	case fetchInvoiceSub:
		subID = ev.Object.invoiceSubscription()
		if subID == "" {
			return "ignored", "", nil // an invoice of no subscription
		}
	}
	if ev.Object.ID == "" {
		s.log.Warn("stripe event without data.object.id ignored", "event", ev.ID, "type", ev.Type)
		return "ignored", "", nil
	}
	// a redelivery of an applied event costs one query, no Stripe request
	if seen, err := eventSeen(ctx, s.pool, ev.ID); err != nil {
		return "", "database", err
	} else if seen {
		return "duplicate", "", nil
	}

	var session *CheckoutSession
	if act == fetchCheckout {
		cs, err := s.client.CheckoutSession(ctx, ev.Object.ID)
		if err != nil {
			return "", "stripe", err
		}
		session = &cs
		subID = cs.Subscription
	}
	var subs []fetched
	if subID != "" {
		at := time.Now()
		sub, err := s.client.Subscription(ctx, subID)
		if err != nil {
			return "", "stripe", err
		}
		subs = append(subs, fetched{sub, at})
	}

	// the event id and its effect commit together: a concurrent duplicate waits in record_stripe_event for
	// this transaction, then finds the event recorded
	var stored []Stored
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		stored = stored[:0]
		first, err := recordEvent(ctx, tx, ev)
		if err != nil || !first {
			outcome = "duplicate"
			return err
		}
		outcome = "applied"
		if session != nil && session.ClientReferenceID != "" && session.Customer != "" {
			if _, err := linkCheckout(ctx, tx, *session); err != nil {
				return err
			}
		}
		for _, f := range subs {
			st, err := storeSubscription(ctx, tx, f.sub, f.at)
			if err != nil {
				return err
			}
			stored = append(stored, st)
		}
		return nil
	})
	if err != nil {
		return "", "database", err
	}
	for i, st := range stored {
		s.noteStored(subs[i].sub, st)
	}
	return outcome, "", nil
}
