package stripesync_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync"
	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

// A long 429 met by reconcile backs off reconcile alone: a webhook's re-fetch meanwhile is served at once.
// Time is a fake clock: the test sees reconcile arm its 30 s wait, and moves the clock past it only after the
// webhook was answered.
func TestWebhookServedWhileReconcileBacksOff(t *testing.T) {
	t.Parallel()
	clock := stripesync.NewFakeClock()
	clock.Auto = time.Second // the rate's spacing passes; Retry-After: 30 does not
	b := setup(t, setupOptions{clock: clock, maxBackoff: 2 * time.Minute})
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.exec(t, `SELECT tollgate.set_customer('bob', NULL, 'cus_bob')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
	b.fake.FailExact(1, "/v1/subscriptions", http.StatusTooManyRequests, "30")

	done := make(chan error, 1)
	go func() {
		_, err := b.syncer.Reconcile(context.Background(), nil)
		done <- err
	}()
	clock.WaitTimers(t, "reconcile waits out Retry-After: 30", func(d []time.Duration) bool {
		return slices.Contains(d, 30*time.Second)
	})

	// meanwhile bob subscribes: the webhook re-fetches his subscription at once
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_b", Customer: "cus_bob", Status: "active", Items: proItems})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_b", "customer.subscription.created", subObject("sub_b")))
	require.Equal(t, "pro", b.plan(t, "bob"))
	select {
	case err := <-done:
		t.Fatalf("reconcile did not wait for Retry-After: %v", err)
	default:
	}
	require.Equal(t, 1, b.fake.Count("/v1/subscriptions"), "reconcile listed again before Retry-After")
	require.Equal(t, []time.Duration{30 * time.Second}, clock.Timers())

	clock.Advance(30 * time.Second)
	require.NoError(t, <-done)
	require.Equal(t, "pro", b.plan(t, "alice"))
	reqs := b.fake.Requests()
	require.Equal(t, []string{"/v1/subscriptions", "/v1/subscriptions/sub_b", "/v1/subscriptions"},
		[]string{reqs[0].Path, reqs[1].Path, reqs[2].Path})
	require.Equal(t, []int{http.StatusTooManyRequests, http.StatusOK, http.StatusOK},
		[]int{reqs[0].Status, reqs[1].Status, reqs[2].Status})
}

// A webhook re-fetch that meets a Retry-After longer than its deadline answers 502 at once (Stripe retries the
// event) instead of holding the request, and pauses reconcile; other webhooks go on.
func TestWebhookMeetingLongRetryAfterFailsFast(t *testing.T) {
	t.Parallel()
	clock := stripesync.NewFakeClock()
	clock.Auto = time.Second
	b := setup(t, setupOptions{clock: clock, maxBackoff: 2 * time.Minute})
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.exec(t, `SELECT tollgate.set_customer('bob', NULL, 'cus_bob')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_b", Customer: "cus_bob", Status: "active", Items: proItems})
	b.fake.Fail(1, "/v1/subscriptions/sub_a", http.StatusTooManyRequests, "60")

	require.Equal(t, http.StatusBadGateway, b.deliver(t, "evt_a", "customer.subscription.created", subObject("sub_a")))
	require.Empty(t, clock.Timers(), "the webhook waited for Retry-After")
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_b", "customer.subscription.created", subObject("sub_b")))
	require.Equal(t, "pro", b.plan(t, "bob"))

	// reconcile yields to the 429 the webhook met
	done := make(chan error, 1)
	go func() {
		_, err := b.syncer.Reconcile(context.Background(), nil)
		done <- err
	}()
	clock.WaitTimers(t, "reconcile waits out the webhook's 429", func(d []time.Duration) bool { return len(d) == 1 })
	require.Zero(t, b.fake.Count("/v1/subscriptions"))
	clock.Advance(time.Minute)
	require.NoError(t, <-done)

	// Stripe's retry of the event goes through
	body := stripetest.Event("evt_a", "customer.subscription.created", apiVersion, time.Now(), subObject("sub_a"))
	require.Equal(t, http.StatusOK, b.post(t, body, stripetest.Sign(body, secret, time.Now())))
	require.Equal(t, "pro", b.plan(t, "alice"))
}

// Reconcile yields its rate budget: with both waiting for the next slot, the webhook's re-fetch goes first.
func TestReconcileYieldsSlotsToWebhooks(t *testing.T) {
	t.Parallel()
	clock := stripesync.NewFakeClock() // no Auto: every slot is the test's to give
	b := setup(t, setupOptions{clock: clock, rate: 10, pageSize: 1})
	b.exec(t, `SELECT tollgate.set_customer('carol', NULL, 'cus_carol')`)
	for _, id := range []string{"sub_1", "sub_2"} {
		b.fake.PutSubscription(stripetest.Subscription{ID: id, Customer: "cus_" + id, Status: "active", Items: proItems})
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.syncer.Reconcile(context.Background(), nil)
		done <- err
	}()
	clock.WaitTimers(t, "reconcile waits for the slot of its second page", func(d []time.Duration) bool { return len(d) == 1 })
	require.Equal(t, 1, b.fake.Count("/v1/subscriptions"))

	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_c", Customer: "cus_carol", Status: "active", Items: proItems})
	code := make(chan int, 1)
	go func() { code <- b.deliver(t, "evt_c", "customer.subscription.created", subObject("sub_c")) }()
	clock.WaitTimers(t, "the webhook waits for the same slot", func(d []time.Duration) bool { return len(d) == 2 })
	clock.Advance(100 * time.Millisecond)
	require.Equal(t, http.StatusOK, <-code)
	require.Equal(t, "pro", b.plan(t, "carol"))
	clock.WaitTimers(t, "reconcile waits for the following slot", func(d []time.Duration) bool { return len(d) == 1 })
	clock.Advance(100 * time.Millisecond)
	require.NoError(t, <-done)

	var paths []string
	for _, r := range b.fake.Requests() {
		paths = append(paths, r.Path)
	}
	require.Equal(t, []string{"/v1/subscriptions", "/v1/subscriptions/sub_c", "/v1/subscriptions"}, paths)
}
