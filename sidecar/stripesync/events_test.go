package stripesync_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

// customer.deleted: the customer's stored subscriptions are re-fetched (Stripe cancels them with the customer),
// so paid access ends even when their own deletion events are lost.
func TestCustomerDeletedRefetchesItsSubscriptions(t *testing.T) {
	t.Parallel()
	shapes(t, func(t *testing.T, b *testBundle, version string) {
		b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
		b.exec(t, `SELECT tollgate.set_customer('bob', NULL, 'cus_bob')`)
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a1", Customer: "cus_alice", Status: "active", Items: proItems})
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a2", Customer: "cus_alice", Status: "trialing",
			Items: []stripetest.Item{{Price: "price_team", Product: "prod_team"}}})
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a3", Customer: "cus_alice", Status: "active", Items: proItems})
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_b", Customer: "cus_bob", Status: "active", Items: proItems})
		for _, id := range []string{"sub_a1", "sub_a2", "sub_a3", "sub_b"} {
			require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_"+id, "customer.subscription.created", subObject(id)))
		}
		require.Equal(t, "team", b.plan(t, "alice"))

		// the customer is deleted; the subscriptions' own events are lost; one of them is gone altogether
		b.fake.DeleteCustomer("cus_alice")
		b.fake.DeleteSubscription("", "sub_a3")
		before := len(b.fake.Requests())
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_del", "customer.deleted",
			map[string]any{"id": "cus_alice", "object": "customer", "deleted": true}))
		require.Equal(t, "free", b.plan(t, "alice"))
		require.Equal(t, "pro", b.plan(t, "bob"), "another customer's subscription is untouched")
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM tollgate.subscriptions
			WHERE stripe_customer = 'cus_alice' AND status = 'canceled' AND gone_at IS NULL`))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions
			WHERE stripe_subscription = 'sub_a3' AND gone_at IS NOT NULL`))
		var paths []string
		for _, r := range b.fake.Requests()[before:] {
			paths = append(paths, r.Path)
		}
		require.ElementsMatch(t, []string{"/v1/subscriptions/sub_a1", "/v1/subscriptions/sub_a2", "/v1/subscriptions/sub_a3"}, paths)

		// a redelivery is a duplicate; a customer with nothing stored costs no request
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_del", "customer.deleted",
			map[string]any{"id": "cus_alice", "object": "customer", "deleted": true}))
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_del2", "customer.deleted",
			map[string]any{"id": "cus_nobody", "object": "customer", "deleted": true}))
		require.Len(t, b.fake.Requests(), before+3)
		b.metric(t, `tollgate_stripe_events_applied_total{type="customer.deleted"} 2`)
	})
}

// Connect: an event of a connected account is re-fetched with that account (Stripe-Account), and the account is
// stored with the subscription.
func TestConnectEventsRefetchWithTheirAccount(t *testing.T) {
	t.Parallel()
	shapes(t, func(t *testing.T, b *testBundle, version string) {
		const acct = "acct_1Conn3ctedXyZ"
		b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_c", Account: acct, Customer: "cus_alice", Status: "active", Items: proItems})
		require.Equal(t, http.StatusOK, b.deliverFrom(t, acct, version, "evt_1", "customer.subscription.created", subObject("sub_c")))
		require.Equal(t, "pro", b.plan(t, "alice"))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions WHERE stripe_subscription = 'sub_c' AND stripe_account = $1`, acct))
		reqs := b.fake.Requests()
		require.Equal(t, acct, reqs[len(reqs)-1].Account)

		// the same event without its account is what tollgate did before: Stripe does not know the subscription
		// on the platform's account (recorded as gone, not retried forever)
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_2", "customer.subscription.updated", subObject("sub_c")))
		require.Equal(t, "free", b.plan(t, "alice"))
		require.Equal(t, http.StatusOK, b.deliverFrom(t, acct, version, "evt_3", "customer.subscription.updated", subObject("sub_c")))
		require.Equal(t, "pro", b.plan(t, "alice"), "a later fetch finds it again")

		// Checkout and invoices of a connected account
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_d", Account: acct, Customer: "cus_dave", Status: "active", Items: proItems})
		b.fake.PutCheckoutSession(stripetest.CheckoutSession{ID: "cs_test_d", Account: acct, ClientReferenceID: "dave",
			Customer: "cus_dave", Subscription: "sub_d"})
		require.Equal(t, http.StatusOK, b.deliverFrom(t, acct, version, "evt_4", "checkout.session.completed",
			map[string]any{"id": "cs_test_d", "object": "checkout.session"}))
		require.Equal(t, "pro", b.plan(t, "dave"))
		b.fake.UpdateSubscriptionIn(acct, "sub_d", func(s *stripetest.Subscription) { s.Status = "unpaid" })
		require.Equal(t, http.StatusOK, b.deliverFrom(t, acct, version, "evt_5", "invoice.payment_failed",
			stripetest.Invoice("in_5", "sub_d", version)))
		require.Equal(t, "free", b.plan(t, "dave"))
		for _, r := range b.fake.Requests()[len(reqs):] {
			if r.Path != "/v1/subscriptions/sub_c" {
				require.Equal(t, acct, r.Account, r.Path)
			}
		}

		// a reconcile lists the platform's own subscriptions and leaves connected ones as webhooks stored them
		_, err := b.syncer.Reconcile(context.Background(), nil)
		require.NoError(t, err)
		require.Equal(t, "pro", b.plan(t, "alice"))
	})
}

// A subscription Stripe no longer knows (404, resource_missing) gives no plan, and the webhook is answered 200
// instead of 502 forever. A 404 that is not Stripe's resource_missing (a wrong STRIPE_API_BASE) is still a
// failure.
func TestSubscriptionStripeNoLongerKnowsIsGone(t *testing.T) {
	t.Parallel()
	shapes(t, func(t *testing.T, b *testBundle, version string) {
		b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_1", "customer.subscription.created", subObject("sub_a")))
		require.Equal(t, "pro", b.plan(t, "alice"))

		b.fake.Fail(1, "/v1/subscriptions/sub_a", http.StatusNotFound, "") // a 404 without resource_missing (not retried)
		require.Equal(t, http.StatusBadGateway, b.deliverFrom(t, "", version, "evt_2", "customer.subscription.updated", subObject("sub_a")))
		require.Equal(t, "pro", b.plan(t, "alice"))

		b.fake.DeleteSubscription("", "sub_a")
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_2", "customer.subscription.updated", subObject("sub_a")))
		require.Equal(t, "free", b.plan(t, "alice"))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions WHERE gone_at IS NOT NULL AND status = 'active'`))
		require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.unmapped_subscriptions()`))
		requests := len(b.fake.Requests())
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_2", "customer.subscription.updated", subObject("sub_a")))
		require.Len(t, b.fake.Requests(), requests, "the redelivery is a duplicate")

		// never stored, and unknown to Stripe: acknowledged, nothing stored
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_3", "customer.subscription.updated", subObject("sub_nope")))
		require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.subscriptions WHERE stripe_subscription = 'sub_nope'`))
		// nor a Checkout Session Stripe does not know
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_4", "checkout.session.completed",
			map[string]any{"id": "cs_test_nope", "object": "checkout.session"}))

		// it comes back (a test-mode restore): known again
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_5", "customer.subscription.updated", subObject("sub_a")))
		require.Equal(t, "pro", b.plan(t, "alice"))
		require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.subscriptions WHERE gone_at IS NOT NULL`))
	})
}

// Ten simultaneous deliveries of one event fetch the subscription once.
func TestConcurrentDuplicatesFetchOnce(t *testing.T) {
	t.Parallel()
	for range 3 {
		b := setup(t)
		b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
		body := stripetest.Event("evt_dup", "customer.subscription.created", apiVersion, time.Now(), subObject("sub_a"))
		sig := stripetest.Sign(body, secret, time.Now())
		const n = 10
		codes := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				codes[i] = b.post(t, body, sig)
			})
		}
		close(start)
		wg.Wait()
		for _, c := range codes {
			require.Equal(t, http.StatusOK, c)
		}
		require.Equal(t, 1, b.fake.Count("/v1/subscriptions/sub_a"), "10 deliveries of one event fetched more than once")
		require.Equal(t, "pro", b.plan(t, "alice"))
		b.metric(t, `tollgate_stripe_events_applied_total{type="customer.subscription.created"} 1`)
		b.metric(t, `tollgate_stripe_events_duplicate_total{type="customer.subscription.created"} 9`)
	}
}

// Different events of one subscription arriving while its fetch is in flight share the next fetch, which
// starts after the first ended: two fetches for ten events, and the second saw the change they signal.
func TestEventsDuringAFetchShareTheNext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
	arrived, release := b.fake.Hold("/v1/subscriptions/sub_a")
	t.Cleanup(release)

	codes := make(chan int, 10)
	go func() { codes <- b.deliver(t, "evt_0", "customer.subscription.updated", subObject("sub_a")) }()
	<-arrived // the first fetch is in flight (it saw the subscription active) ...
	b.fake.SetStatus("sub_a", "canceled")
	for i := 1; i < 10; i++ { // ... when the cancellation's events come
		go func() {
			codes <- b.deliver(t, "evt_"+string(rune('0'+i)), "customer.subscription.updated", subObject("sub_a"))
		}()
	}
	// the first of them starts the next fetch; the other eight share it
	waitFor(t, "eight events to share the next fetch", func() bool {
		return b.metricValue(t, "tollgate_stripe_fetches_shared_total") == 8
	})
	release()
	for range 10 {
		require.Equal(t, http.StatusOK, <-codes)
	}
	require.Equal(t, 2, b.fake.Count("/v1/subscriptions/sub_a"))
	require.Equal(t, "free", b.plan(t, "alice"), "an event got an answer that predates it")
	require.Equal(t, 10, b.count(t, `SELECT count(*) FROM tollgate.stripe_events`))
}
