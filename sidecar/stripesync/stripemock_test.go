package stripesync_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync"
	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

// stripe-mock speaks the newest API: no current_period_* on the subscription, only on its items. Events
// rendered with that API must still sync, with the period read from the items.
func TestStripeMockNewestAPIShape(t *testing.T) {
	t.Parallel()
	base := stripetest.StripeMock(t)
	b := setup(t, setupOptions{apiBase: base})
	ctx := context.Background()

	// stripe-mock answers any id with its fixture: learn its customer and price
	client := stripesync.NewClient(stripesync.ClientOptions{Key: stripetest.Key, APIBase: base})
	sub, err := client.Subscription(ctx, "", "sub_mock")
	require.NoError(t, err)
	require.Equal(t, "sub_mock", sub.ID)
	require.NotEmpty(t, sub.PriceIDs)
	require.False(t, sub.PeriodStart.IsZero(), "period not read from the items")
	require.False(t, sub.PeriodEnd.IsZero(), "period not read from the items")
	b.exec(t, `SELECT tollgate.define_plan('pro', false, $1, 10)`, sub.PriceIDs)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, $1)`, sub.Customer)

	// stripe-mock's subscription has its payment collection paused (mark_uncollectible, no resumes_at): it
	// gives no plan, unless pause_collection_keeps_plan says otherwise
	require.Equal(t, "mark_uncollectible", sub.PauseCollection)
	require.True(t, sub.PauseResumesAt.IsZero())
	body := stripetest.Event("evt_mock", "customer.subscription.updated", newAPIVersion, time.Now(),
		map[string]any{"id": "sub_mock", "object": "subscription"})
	require.Equal(t, http.StatusOK, b.post(t, body, stripetest.Sign(body, secret, time.Now())))
	require.Equal(t, "free", b.plan(t, "alice"))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions
		WHERE stripe_subscription = 'sub_mock' AND pause_collection = 'mark_uncollectible' AND pause_resumes_at IS NULL`))
	b.exec(t, `SELECT tollgate.set_setting('pause_collection_keeps_plan', 'true')`)
	require.Equal(t, "pro", b.plan(t, "alice"))
	var start, end time.Time
	require.NoError(t, b.owner.QueryRow(ctx, `SELECT current_period_start, current_period_end
		FROM tollgate.subscriptions WHERE stripe_subscription = 'sub_mock'`).Scan(&start, &end))
	require.True(t, start.Equal(sub.PeriodStart), "start %v, Stripe %v", start, sub.PeriodStart)
	require.True(t, end.Equal(sub.PeriodEnd), "end %v, Stripe %v", end, sub.PeriodEnd)
	require.Greater(t, start.Year(), 1970)
	require.Greater(t, end.Year(), 1970)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.customers
		WHERE customer = 'alice' AND period_start IS NOT NULL AND period_end IS NOT NULL`))

	// a reconcile lists stripe-mock's subscriptions the same way
	res, err := b.syncer.Reconcile(ctx, nil)
	require.NoError(t, err)
	require.Positive(t, res.Subscriptions)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.subscriptions
		WHERE current_period_start < '1971-01-01' OR current_period_end < '1971-01-01'`))

	// and a Checkout Session of the newest shape is read without error
	cs, err := client.CheckoutSession(ctx, "", "cs_test_mock")
	require.NoError(t, err)
	require.Equal(t, "cs_test_mock", cs.ID)
	require.NotEmpty(t, cs.Lines, "the expanded line_items")
	require.Regexp(t, `^price_`, cs.Lines[0].Price)
	require.Positive(t, cs.Lines[0].Quantity)

	// and an invoice of the newest shape (pricing instead of price on its lines), with its customer expanded
	inv, err := client.Invoice(ctx, "", "in_mock")
	require.NoError(t, err)
	require.Equal(t, "in_mock", inv.ID)
	require.NotEmpty(t, inv.Status)
	require.Regexp(t, `^cus_`, inv.Customer)
}
