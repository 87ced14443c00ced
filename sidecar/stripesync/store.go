package stripesync

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The database side: every write goes through a tollgate.* function granted to tollgate_sidecar (sql/stripe_*.sql).

// querier is a *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTx runs fn in a transaction, and runs it again (at most twice more) when PostgreSQL aborted it for a
// deadlock or a serialization failure: a webhook and a reconcile page may lock one customer's rows in opposite
// orders. fn must start from scratch each time.
func inTx(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, fn func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, db, fn)
		var pgErr *pgconn.PgError
		if attempt < 3 && errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001") {
			continue
		}
		return err
	}
}

// Stored is what tollgate.sync_subscription did with a subscription.
type Stored struct {
	// Customer is the tollgate customer the subscription belongs to; "" = nobody yet.
	Customer string
	// Plan is the plan its prices or products map to; "" = no plan names them.
	Plan string
	// Applied is false when a newer fetch had been stored already.
	Applied bool
}

const syncSubscriptionSQL = `SELECT customer, plan, applied FROM tollgate.sync_subscription(
  stripe_subscription => $1, stripe_customer => $2, status => $3, price_ids => $4, product_ids => $5,
  current_period_start => $6, current_period_end => $7, cancel_at_period_end => $8, stripe_created => $9,
  fetched_at => $10, tollgate_customer => $11, stripe_account => $12, pause_collection => $13,
  pause_resumes_at => $14, trial_start => $15, trial_end => $16, has_payment_method => $17)`

func syncArgs(s Subscription, fetchedAt time.Time) []any {
	return []any{s.ID, s.Customer, s.Status, nonNil(s.PriceIDs), nonNil(s.ProductIDs),
		nullTime(s.PeriodStart), nullTime(s.PeriodEnd), s.CancelAtPeriodEnd, nullTime(s.Created),
		fetchedAt, nullString(s.TollgateCustomer), nullString(s.Account), nullString(s.PauseCollection),
		nullTime(s.PauseResumesAt), nullTime(s.TrialStart), nullTime(s.TrialEnd), s.HasPaymentMethod}
}

func storeSubscription(ctx context.Context, q querier, s Subscription, fetchedAt time.Time) (Stored, error) {
	var customer, plan *string
	var st Stored
	if err := q.QueryRow(ctx, syncSubscriptionSQL, syncArgs(s, fetchedAt)...).Scan(&customer, &plan, &st.Applied); err != nil {
		return st, fmt.Errorf("store subscription %s: %w", s.ID, err)
	}
	st.Customer, st.Plan = deref(customer), deref(plan)
	return st, nil
}

// storeSubscriptions stores a page of subscriptions in one round trip.
func storeSubscriptions(ctx context.Context, tx pgx.Tx, subs []Subscription, fetchedAt time.Time) ([]Stored, error) {
	b := &pgx.Batch{}
	for _, s := range subs {
		b.Queue(syncSubscriptionSQL, syncArgs(s, fetchedAt)...)
	}
	res := tx.SendBatch(ctx, b)
	out := make([]Stored, len(subs))
	for i, s := range subs {
		var customer, plan *string
		if err := res.QueryRow().Scan(&customer, &plan, &out[i].Applied); err != nil {
			res.Close()
			return nil, fmt.Errorf("store subscription %s: %w", s.ID, err)
		}
		out[i].Customer, out[i].Plan = deref(customer), deref(plan)
	}
	return out, res.Close()
}

// storeGone records that Stripe answered 404 for a subscription in a fetch that started at fetchedAt.
func storeGone(ctx context.Context, q querier, id string, fetchedAt time.Time) (Stored, error) {
	var customer *string
	var st Stored
	if err := q.QueryRow(ctx, `SELECT customer, applied FROM tollgate.stripe_subscription_gone($1, $2)`, id, fetchedAt).
		Scan(&customer, &st.Applied); err != nil {
		return st, fmt.Errorf("store gone subscription %s: %w", id, err)
	}
	st.Customer = deref(customer)
	return st, nil
}

// objectRef names a Stripe object in an account ("" = the platform's).
type objectRef struct {
	Account, ID string
}

// customerSubscriptions lists the stored subscriptions of a Stripe customer that may still give a plan.
func customerSubscriptions(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, stripeCustomer string) ([]objectRef, error) {
	return queryRefs(ctx, db, `SELECT stripe_subscription, stripe_account FROM tollgate.stripe_customer_subscriptions($1)`, stripeCustomer)
}

// dueResumes lists up to n stored subscriptions whose paused collection was due to resume.
func dueResumes(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, n int) ([]objectRef, error) {
	return queryRefs(ctx, db, `SELECT stripe_subscription, stripe_account FROM tollgate.stripe_due_resumes($1)`, n)
}

func queryRefs(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, arg any) ([]objectRef, error) {
	rows, err := db.Query(ctx, sql, arg)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (objectRef, error) {
		var ref objectRef
		var account *string
		err := r.Scan(&ref.ID, &account)
		ref.Account = deref(account)
		return ref, err
	})
}

// trialWillEnd writes the trial prompt's event for a stored subscription when it is due one.
func trialWillEnd(ctx context.Context, q querier, id string) (bool, error) {
	var wrote bool
	if err := q.QueryRow(ctx, `SELECT tollgate.trial_will_end($1)`, id).Scan(&wrote); err != nil {
		return false, fmt.Errorf("trial prompt of %s: %w", id, err)
	}
	return wrote, nil
}

func recordEvent(ctx context.Context, q querier, e event) (bool, error) {
	var first bool
	err := q.QueryRow(ctx, `SELECT tollgate.record_stripe_event($1, $2, $3, $4, $5)`,
		e.ID, e.Type, nullString(e.APIVersion), nullString(e.Object.ID), nullTime(unixTime(e.Created))).Scan(&first)
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", e.ID, err)
	}
	return first, nil
}

func eventSeen(ctx context.Context, q querier, id string) (bool, error) {
	var seen bool
	if err := q.QueryRow(ctx, `SELECT tollgate.stripe_event_seen($1)`, id).Scan(&seen); err != nil {
		return false, fmt.Errorf("look up event %s: %w", id, err)
	}
	return seen, nil
}

func linkCheckout(ctx context.Context, q querier, cs CheckoutSession) (string, error) {
	var owner *string
	err := q.QueryRow(ctx, `SELECT tollgate.link_checkout_session($1, $2, $3)`,
		cs.ID, cs.Customer, cs.ClientReferenceID).Scan(&owner)
	if err != nil {
		return "", fmt.Errorf("link checkout session %s: %w", cs.ID, err)
	}
	return deref(owner), nil
}

// checkoutClick marks the upgrade-link click a completed subscription-mode session was created for (found by
// the session, or by its metadata.tollgate_click for its client_reference_id); 0 when it was none's.
func checkoutClick(ctx context.Context, q querier, cs CheckoutSession) (int64, error) {
	var click *int64
	if id, err := strconv.ParseInt(cs.Metadata["tollgate_click"], 10, 64); err == nil && id > 0 {
		click = &id
	}
	ref := cs.ClientReferenceID
	if !validRef(ref) {
		ref = ""
	}
	var got *int64
	if err := q.QueryRow(ctx, `SELECT tollgate.record_checkout_click($1, $2, $3)`, cs.ID, click, nullString(ref)).Scan(&got); err != nil {
		return 0, fmt.Errorf("record checkout click %s: %w", cs.ID, err)
	}
	if got == nil {
		return 0, nil
	}
	return *got, nil
}

// topupPrices lists the Stripe prices of the top-up packs.
func topupPrices(ctx context.Context, q querier) ([]string, error) {
	var prices []string
	if err := q.QueryRow(ctx, `SELECT tollgate.topup_prices()`).Scan(&prices); err != nil {
		return nil, fmt.Errorf("top-up prices: %w", err)
	}
	return prices, nil
}

// recordTopup records a purchase with tollgate.record_stripe_topup.
func recordTopup(ctx context.Context, q querier, p purchase) (topupResult, error) {
	r := topupResult{purchase: p}
	prices, quantities := PriceIDs(p.Lines)
	var customer *string
	err := q.QueryRow(ctx, `SELECT customer, matched, granted, recorded FROM tollgate.record_stripe_topup($1, $2, $3, $4, $5, $6)`,
		p.Object, nullString(p.StripeCustomer), nullString(p.TollgateCustomer), nullString(p.ClientReference),
		prices, quantities).Scan(&customer, &r.Matched, &r.Granted, &r.Recorded)
	if err != nil {
		return r, fmt.Errorf("record top-up purchase %s: %w", p.Object, err)
	}
	r.Customer = deref(customer)
	return r, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
