package stripesync_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync"
	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

func TestReconcileConvergesWithoutWebhooks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	pro := []stripetest.Item{{Price: "price_pro_monthly", Product: "prod_pro"}}
	for _, c := range []string{"alice", "bob", "dave"} {
		b.exec(t, `SELECT tollgate.set_customer($1, NULL, $2)`, c, "cus_"+c)
	}
	// alice paid, and tollgate heard of it
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: pro})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_a", "customer.subscription.created", subObject("sub_a")))
	require.Equal(t, "pro", b.plan(t, "alice"))

	// then every webhook is lost: alice cancels, bob subscribes, carol subscribes to team with metadata, dave
	// falls past due (no grace), and someone nobody knows subscribes
	b.fake.SetStatus("sub_a", "canceled")
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_b", Customer: "cus_bob", Status: "active", Items: pro})
	b.fake.PutCustomer(stripetest.Customer{ID: "cus_carol", Metadata: map[string]string{"tollgate_customer": "carol"}})
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_c", Customer: "cus_carol", Status: "trialing",
		Items: []stripetest.Item{{Price: "price_team_monthly", Product: "prod_team"}}})
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_d", Customer: "cus_dave", Status: "past_due", Items: pro})
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_e", Customer: "cus_nobody", Status: "active", Items: pro})

	var reports []stripesync.Progress
	res, err := b.syncer.Reconcile(ctx, func(p stripesync.Progress) { reports = append(reports, p) })
	require.NoError(t, err)
	require.Equal(t, 5, res.Subscriptions)
	require.Equal(t, "free", b.plan(t, "alice"))
	require.Equal(t, "pro", b.plan(t, "bob"))
	require.Equal(t, "team", b.plan(t, "carol"))
	require.Equal(t, "free", b.plan(t, "dave"))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions WHERE customer IS NULL AND stripe_subscription = 'sub_e'`))
	require.NotEmpty(t, reports)
	require.True(t, reports[len(reports)-1].Finished)
	require.Equal(t, 5, reports[len(reports)-1].Done)

	// with grace configured, dave keeps pro; a second run changes nothing else
	b.exec(t, `SELECT tollgate.set_setting('past_due_is_grace', 'true')`)
	require.Equal(t, "pro", b.plan(t, "dave"))
	_, err = b.syncer.Reconcile(ctx, func(p stripesync.Progress) { require.Equal(t, 5, p.Expected) })
	require.NoError(t, err)
	require.Equal(t, "free", b.plan(t, "alice"))
	b.metric(t, `tollgate_stripe_reconcile_runs_total{result="ok"} 2`)
	b.metric(t, `tollgate_stripe_reconcile_subscriptions_total 10`)
}

func TestReconcilePagesWithinRateDespite429s(t *testing.T) {
	t.Parallel()
	const (
		subs     = 1000
		pageSize = 25
		rate     = 40.0
	)
	b := setup(t, setupOptions{rate: rate, pageSize: pageSize, minBackoff: 20 * time.Millisecond})
	created := time.Now().Add(-time.Hour).Unix()
	for i := range subs {
		b.fake.PutSubscription(stripetest.Subscription{ID: fmt.Sprintf("sub_%04d", i), Customer: fmt.Sprintf("cus_%04d", i),
			Status: "active", Created: created + int64(i), Items: []stripetest.Item{{Price: "price_pro_monthly"}}})
	}
	b.exec(t, `SELECT tollgate.set_customer('c0500', NULL, 'cus_0500')`)
	b.fake.Fail(1, "/v1/subscriptions", http.StatusTooManyRequests, "1") // honour Retry-After: 1
	b.fake.Fail(2, "/v1/subscriptions", http.StatusTooManyRequests, "")  // back off without it

	res, err := b.syncer.Reconcile(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, subs, res.Subscriptions)
	require.Equal(t, subs/pageSize, res.Pages)
	require.Equal(t, subs, b.count(t, `SELECT count(*) FROM tollgate.subscriptions`))
	require.Equal(t, "pro", b.plan(t, "c0500"))

	reqs := b.fake.Requests()
	require.Len(t, reqs, subs/pageSize+3)
	require.Equal(t, http.StatusTooManyRequests, reqs[0].Status)
	require.GreaterOrEqual(t, reqs[1].At.Sub(reqs[0].At), 950*time.Millisecond, "Retry-After: 1 not honoured")
	// never faster than the rate: any k+1 consecutive requests span at least k/rate (token bucket of one)
	const slack = 15 * time.Millisecond
	for i := range reqs {
		for j := i + 1; j < len(reqs); j++ {
			min := time.Duration(float64(j-i) / rate * float64(time.Second))
			require.GreaterOrEqual(t, reqs[j].At.Sub(reqs[i].At)+slack, min, "requests %d..%d too fast", i, j)
		}
	}
	b.metric(t, `tollgate_stripe_api_errors_total{op="subscriptions.list",code="429"} 3`)
}

func TestReconcilerComponentRunsAtStartAndEveryInterval(t *testing.T) {
	t.Parallel()
	runs := make(chan error, 10)
	b := setup(t, setupOptions{interval: 50 * time.Millisecond, onRun: func(_ stripesync.Result, err error) { runs <- err }})
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro_monthly"}}})
	r := b.syncer.Reconciler()
	require.Equal(t, "stripe-reconcile", r.Name())
	require.NoError(t, r.Ready(context.Background()))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	require.NoError(t, <-runs)
	require.Equal(t, "pro", b.plan(t, "alice"))
	b.fake.SetStatus("sub_a", "canceled")
	// the next run may have started before the change; the one after it started after
	require.NoError(t, <-runs)
	require.NoError(t, <-runs)
	require.Equal(t, "free", b.plan(t, "alice"))
	cancel()
	require.NoError(t, <-done)
}

func TestReconcilerIsNotReadyWhenStripeRefusesTheKey(t *testing.T) {
	t.Parallel()
	runs := make(chan error, 10)
	b := setup(t, setupOptions{interval: time.Hour, onRun: func(_ stripesync.Result, err error) { runs <- err }})
	b.fake.Fail(1, "", http.StatusUnauthorized, "")
	r := b.syncer.Reconciler()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	err := <-runs
	require.True(t, stripesync.IsAuthError(err), "%v", err)
	require.Error(t, r.Ready(context.Background()))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.sync_runs WHERE error IS NOT NULL AND finished_at IS NOT NULL`))
	cancel()
	require.NoError(t, <-done)
}
