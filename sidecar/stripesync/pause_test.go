package stripesync_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

var proItems = []stripetest.Item{{Price: "price_pro_monthly", Product: "prod_pro"}}

// Stripe leaves status = active when payment collection is paused: the pause itself must take the plan away,
// unless pause_collection_keeps_plan says otherwise.
func TestPausedCollectionGivesNoPlan(t *testing.T) {
	t.Parallel()
	shapes(t, func(t *testing.T, b *testBundle, version string) {
		b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_1", "customer.subscription.created", subObject("sub_a")))
		require.Equal(t, "pro", b.plan(t, "alice"))

		for i, behavior := range []string{"void", "keep_as_draft", "mark_uncollectible"} {
			b.fake.UpdateSubscription("sub_a", func(s *stripetest.Subscription) { s.PauseBehavior = behavior })
			require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_p"+behavior, "customer.subscription.updated", subObject("sub_a")))
			require.Equal(t, "free", b.plan(t, "alice"), behavior)
			require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions
				WHERE stripe_subscription = 'sub_a' AND status = 'active' AND pause_collection = $1 AND pause_resumes_at IS NULL`, behavior))
			// the plan change is a churn, and resuming is a conversion again
			require.Equal(t, i+1, b.count(t, `SELECT count(*) FROM tollgate.plan_changes WHERE customer = 'alice' AND kind = 'churn'`))

			b.fake.UpdateSubscription("sub_a", func(s *stripetest.Subscription) { s.PauseBehavior = "" })
			require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_r"+behavior, "customer.subscription.updated", subObject("sub_a")))
			require.Equal(t, "pro", b.plan(t, "alice"), behavior)
		}

		// a merchant who pauses collection but keeps serving the customer
		b.fake.UpdateSubscription("sub_a", func(s *stripetest.Subscription) { s.PauseBehavior = "void" })
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_p2", "customer.subscription.updated", subObject("sub_a")))
		require.Equal(t, "free", b.plan(t, "alice"))
		b.exec(t, `SELECT tollgate.set_setting('pause_collection_keeps_plan', 'true')`)
		require.Equal(t, "pro", b.plan(t, "alice"), "the setting applies to stored subscriptions at once")
		b.exec(t, `SELECT tollgate.set_setting('pause_collection_keeps_plan', 'false')`)
		require.Equal(t, "free", b.plan(t, "alice"))

		// reconcile reads the pause the same way
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_b", Customer: "cus_bob", Status: "active", Items: proItems,
			PauseBehavior: "keep_as_draft"})
		b.exec(t, `SELECT tollgate.set_customer('bob', NULL, 'cus_bob')`)
		_, err := b.syncer.Reconcile(context.Background(), nil)
		require.NoError(t, err)
		require.Equal(t, "free", b.plan(t, "bob"))
		require.Equal(t, "free", b.plan(t, "alice"))
	})
}

// A pause with resumes_at stops counting at that time, and the sidecar re-fetches the subscription then, in
// case Stripe's own customer.subscription.updated is late or lost.
func TestPausedCollectionResumes(t *testing.T) {
	t.Parallel()
	shapes(t, func(t *testing.T, b *testBundle, version string) {
		ctx := context.Background()
		b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
		resumes := time.Now().Add(24 * time.Hour).Unix()
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems,
			PauseBehavior: "void", PauseResumesAt: resumes})
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_1", "customer.subscription.updated", subObject("sub_a")))
		require.Equal(t, "free", b.plan(t, "alice"))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions
			WHERE stripe_subscription = 'sub_a' AND pause_resumes_at = to_timestamp($1)`, resumes))

		// nothing is due yet
		n, err := b.syncer.ResumeDue(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		fetches := b.fake.Count("/v1/subscriptions/sub_a")

		// a day later (the stored resumes_at moved into the past): the pause no longer counts ...
		b.exec(t, `UPDATE tollgate.subscriptions SET pause_resumes_at = now() - interval '1 second' WHERE stripe_subscription = 'sub_a'`)
		require.Equal(t, "pro", b.plan(t, "alice"))
		// ... and the resumer re-fetches it: Stripe has not resumed it yet, so it stays due
		n, err = b.syncer.ResumeDue(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, fetches+1, b.fake.Count("/v1/subscriptions/sub_a"))
		b.exec(t, `UPDATE tollgate.subscriptions SET pause_resumes_at = now() - interval '1 second' WHERE stripe_subscription = 'sub_a'`)
		// Stripe resumed collection; the webhook was lost
		b.fake.UpdateSubscription("sub_a", func(s *stripetest.Subscription) { s.PauseBehavior, s.PauseResumesAt = "", 0 })
		n, err = b.syncer.ResumeDue(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions
			WHERE stripe_subscription = 'sub_a' AND pause_collection IS NULL AND pause_resumes_at IS NULL`))
		require.Equal(t, "pro", b.plan(t, "alice"))
		n, err = b.syncer.ResumeDue(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "nothing is due any more")
		b.metric(t, `tollgate_stripe_pause_resumes_total 2`)
	})
}

// The Resumer component runs ResumeDue at start.
func TestResumerComponent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems,
		PauseBehavior: "void", PauseResumesAt: time.Now().Add(time.Hour).Unix()})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_1", "customer.subscription.updated", subObject("sub_a")))
	b.exec(t, `UPDATE tollgate.subscriptions SET pause_resumes_at = now() - interval '1 second'`)
	b.fake.UpdateSubscription("sub_a", func(s *stripetest.Subscription) { s.PauseBehavior, s.PauseResumesAt = "", 0 })

	r := b.syncer.Resumer()
	require.Equal(t, "stripe-resume", r.Name())
	require.NoError(t, r.Ready(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "the resumer's first run", func() bool {
		return b.count(t, `SELECT count(*) FROM tollgate.subscriptions WHERE pause_collection IS NULL`) == 1
	})
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, "pro", b.plan(t, "alice"))
}
