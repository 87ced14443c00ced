package stripesync_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

func TestWebhookRejectsBadSignatures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro_monthly", Product: "prod_pro"}}})
	before := b.rowsEverywhere(t)

	now := time.Now()
	body := stripetest.Event("evt_bad", "customer.subscription.created", apiVersion, now, subObject("sub_a"))
	good := stripetest.Sign(body, secret, now)
	tampered := bytes.Replace(body, []byte("sub_a"), []byte("sub_b"), 1)
	for name, tc := range map[string]struct {
		body []byte
		sig  string
		code int
	}{
		"missing":          {body, "", http.StatusBadRequest},
		"malformed":        {body, "t=notanumber,v1=abc", http.StatusBadRequest},
		"no v1":            {body, "t=" + good[2:12], http.StatusBadRequest},
		"garbage":          {body, "hello", http.StatusBadRequest},
		"wrong secret":     {body, stripetest.Sign(body, "whsec_someone_else", now), http.StatusBadRequest},
		"tampered body":    {tampered, good, http.StatusBadRequest},
		"too old":          {body, stripetest.Sign(body, secret, now.Add(-6*time.Minute)), http.StatusBadRequest},
		"signed not json":  {[]byte("not json"), stripetest.Sign([]byte("not json"), secret, now), http.StatusBadRequest},
		"signed no id":     {[]byte(`{"type":"x"}`), stripetest.Sign([]byte(`{"type":"x"}`), secret, now), http.StatusBadRequest},
		"too large":        {bytes.Repeat([]byte(" "), 2<<20), good, http.StatusRequestEntityTooLarge},
		"v0 scheme only":   {body, strings.Replace(good, "v1=", "v0=", 1), http.StatusBadRequest},
		"signature of old": {body, stripetest.Sign([]byte("other"), secret, now), http.StatusBadRequest},
	} {
		require.Equal(t, tc.code, b.post(t, tc.body, tc.sig), name)
	}
	require.Equal(t, before, b.rowsEverywhere(t), "a rejected webhook wrote something")
	require.Empty(t, b.fake.Requests(), "a rejected webhook made Stripe requests")
	require.Equal(t, "free", b.plan(t, "alice"))
	b.metric(t, `tollgate_stripe_events_rejected_total{reason="too_old"} 1`)
	b.metric(t, `tollgate_stripe_events_rejected_total{reason="missing"} 1`)

	// GET is not a webhook
	resp, err := http.Get(b.srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	// the good one, and one signed by the previous secret during a roll, go through
	require.Equal(t, http.StatusOK, b.post(t, body, good))
	require.Equal(t, "pro", b.plan(t, "alice"))
	body2 := stripetest.Event("evt_old_secret", "customer.subscription.updated", apiVersion, now, subObject("sub_a"))
	require.Equal(t, http.StatusOK, b.post(t, body2, stripetest.Sign(body2, oldSecret, now)))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM tollgate.stripe_events`))
}

func TestWebhookConcurrentDuplicatesHaveOneEffect(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro_monthly", Product: "prod_pro"}}})
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
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.stripe_events`))
	require.Equal(t, "pro", b.plan(t, "alice"))
	b.metric(t, `tollgate_stripe_events_applied_total{type="customer.subscription.created"} 1`)
	b.metric(t, `tollgate_stripe_events_duplicate_total{type="customer.subscription.created"} 9`)
	b.metric(t, `tollgate_stripe_events_received_total{type="customer.subscription.created"} 10`)

	// a redelivery later costs no Stripe request
	requests := len(b.fake.Requests())
	require.Equal(t, http.StatusOK, b.post(t, body, stripetest.Sign(body, secret, time.Now())))
	require.Len(t, b.fake.Requests(), requests)
}

func TestWebhookOrderDoesNotMatter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.exec(t, `SELECT tollgate.set_customer('bob', NULL, 'cus_bob')`)

	// updated arrives before created; Stripe's subscription has moved on to team since both were sent
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active",
		Items: []stripetest.Item{{Price: "price_team", Product: "prod_team"}}})
	stale := map[string]any{"id": "sub_a", "object": "subscription", "status": "incomplete",
		"items": map[string]any{"data": []any{map[string]any{"price": map[string]any{"id": "price_pro_monthly"}}}}}
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_a2", "customer.subscription.updated", stale))
	require.Equal(t, "team", b.plan(t, "alice"))
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_a1", "customer.subscription.created", stale))
	require.Equal(t, "team", b.plan(t, "alice"))

	// two events of the same second, the later (cancellation) delivered first
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_b", Customer: "cus_bob", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro_yearly", Product: "prod_pro"}}})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_b1", "customer.subscription.created", subObject("sub_b")))
	require.Equal(t, "pro", b.plan(t, "bob"))
	b.fake.SetStatus("sub_b", "canceled")
	second := time.Now()
	for _, id := range []string{"evt_b3", "evt_b2"} {
		body := stripetest.Event(id, "customer.subscription.updated", apiVersion, second, subObject("sub_b"))
		require.Equal(t, http.StatusOK, b.post(t, body, stripetest.Sign(body, secret, second)))
	}
	require.Equal(t, "free", b.plan(t, "bob"))
	b.fake.SetStatus("sub_b", "active") // resumed: paused/resumed events re-fetch too
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_b4", "customer.subscription.resumed", subObject("sub_b")))
	require.Equal(t, "pro", b.plan(t, "bob"))
	b.fake.SetStatus("sub_b", "paused")
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_b5", "customer.subscription.paused", subObject("sub_b")))
	require.Equal(t, "free", b.plan(t, "bob"))
}

func TestWebhookMapsCustomersByEachRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pro := []stripetest.Item{{Price: "price_pro_monthly", Product: "prod_pro"}}
	b.exec(t, `SELECT tollgate.define_feature('api_calls', 'month')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'api_calls', 1)`)
	b.exec(t, `SELECT tollgate.set_limit('pro', 'api_calls', NULL)`)
	// three free customers who used up their quota before they pay
	for _, c := range []string{"app_linked", "by_metadata", "by_checkout"} {
		require.True(t, b.consume(t, c))
		require.False(t, b.consume(t, c))
	}

	// 1. the app's link: set_customer(customer, email, stripe_customer)
	b.exec(t, `SELECT tollgate.set_customer('app_linked', NULL, 'cus_1')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_1", Customer: "cus_1", Status: "active", Items: pro})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_1", "customer.subscription.created", subObject("sub_1")))
	require.Equal(t, "pro", b.plan(t, "app_linked"))
	require.True(t, b.consume(t, "app_linked"), "the gate does not see the paid plan")

	// 2. metadata.tollgate_customer on the Stripe customer
	b.fake.PutCustomer(stripetest.Customer{ID: "cus_2", Metadata: map[string]string{"tollgate_customer": "by_metadata"}})
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_2", Customer: "cus_2", Status: "trialing", Items: pro})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_2", "customer.subscription.created", subObject("sub_2")))
	require.Equal(t, "pro", b.plan(t, "by_metadata"))
	require.True(t, b.consume(t, "by_metadata"), "the gate does not see the paid plan")

	// 3. client_reference_id of a completed Checkout Session; the link is recorded
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_3", Customer: "cus_3", Status: "active", Items: pro})
	b.fake.PutCheckoutSession(stripetest.CheckoutSession{ID: "cs_test_3", ClientReferenceID: "by_checkout",
		Customer: "cus_3", Subscription: "sub_3"})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_3", "checkout.session.completed",
		map[string]any{"id": "cs_test_3", "object": "checkout.session"}))
	require.Equal(t, "pro", b.plan(t, "by_checkout"))
	require.True(t, b.consume(t, "by_checkout"), "the gate does not see the paid plan")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.stripe_links
		WHERE stripe_customer = 'cus_3' AND customer = 'by_checkout' AND source = 'checkout' AND source_id = 'cs_test_3'`))
	// ... so a later renewal of that customer's subscription maps without the session
	b.fake.SetStatus("sub_3", "past_due")
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_4", "invoice.payment_failed",
		map[string]any{"id": "in_4", "object": "invoice", "subscription": "sub_3"}))
	require.Equal(t, "free", b.plan(t, "by_checkout"))
	require.False(t, b.consume(t, "by_checkout"))
}

func TestWebhookRefetchFailureIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro_monthly", Product: "prod_pro"}}})
	b.fake.Fail(8, "/v1/subscriptions/", http.StatusInternalServerError, "") // every attempt
	body := stripetest.Event("evt_r", "customer.subscription.updated", apiVersion, time.Now(), subObject("sub_a"))
	require.Equal(t, http.StatusBadGateway, b.post(t, body, stripetest.Sign(body, secret, time.Now())))
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.stripe_events`), "a failed event must stay unrecorded")
	require.Equal(t, "free", b.plan(t, "alice"))
	b.metric(t, `tollgate_stripe_events_failed_total{type="customer.subscription.updated",stage="stripe"} 1`)
	b.metric(t, `tollgate_stripe_api_errors_total{op="subscriptions.get",code="500"} 8`)

	// Stripe retries the same event; now it goes through
	require.Equal(t, http.StatusOK, b.post(t, body, stripetest.Sign(body, secret, time.Now())))
	require.Equal(t, "pro", b.plan(t, "alice"))
}

func TestWebhookAcknowledgesOtherEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_c", "charge.succeeded", map[string]any{"id": "ch_1", "object": "charge"}))
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_i", "invoice.paid", map[string]any{"id": "in_1", "object": "invoice"}))
	require.Zero(t, b.rowsEverywhere(t))
	require.Empty(t, b.fake.Requests())
	b.metric(t, `tollgate_stripe_events_ignored_total{type="charge.succeeded"} 1`)
}

func TestWebhookInvoiceOfNewerAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro_monthly", Product: "prod_pro"}}})
	// API 2025-03-31 moved invoice.subscription to invoice.parent.subscription_details.subscription
	body := stripetest.Event("evt_new", "invoice.paid", newAPIVersion, time.Now(), map[string]any{
		"id": "in_1", "object": "invoice",
		"parent": map[string]any{"type": "subscription_details",
			"subscription_details": map[string]any{"subscription": "sub_a"}},
	})
	require.Equal(t, http.StatusOK, b.post(t, body, stripetest.Sign(body, secret, time.Now())))
	require.Equal(t, "pro", b.plan(t, "alice"))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.stripe_events WHERE api_version = $1 AND object_id = 'in_1'`, newAPIVersion))
}

func TestBestEntitledPlanWins(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_pro", Customer: "cus_alice", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro_monthly", Product: "prod_pro"}}})
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_team", Customer: "cus_alice", Status: "trialing",
		Items: []stripetest.Item{{Price: "price_team_seat", Product: "prod_team"}}})
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_other", Customer: "cus_alice", Status: "active",
		Items: []stripetest.Item{{Price: "price_unknown", Product: "prod_unknown"}}})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_1", "customer.subscription.created", subObject("sub_pro")))
	require.Equal(t, "pro", b.plan(t, "alice"))
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_2", "customer.subscription.created", subObject("sub_team")))
	require.Equal(t, "team", b.plan(t, "alice"))
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_3", "customer.subscription.created", subObject("sub_other")))
	require.Equal(t, "team", b.plan(t, "alice"), "a price no plan names changes nothing")
	b.metric(t, `tollgate_stripe_unmapped_subscriptions_total 1`)
	b.fake.SetStatus("sub_team", "incomplete_expired")
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_4", "customer.subscription.updated", subObject("sub_team")))
	require.Equal(t, "pro", b.plan(t, "alice"))
	b.fake.SetStatus("sub_pro", "unpaid")
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_5", "customer.subscription.updated", subObject("sub_pro")))
	require.Equal(t, "free", b.plan(t, "alice"))
}

// Signed bodies that are no event tollgate can act on are answered 400 (Stripe gives up on them), not 500 (which
// Stripe retries for three days); a signature from the future is rejected like one from the past.
func TestWebhookRejectsSignedBadEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
	now := time.Now()
	signed := func(body []byte) ([]byte, string) { return body, stripetest.Sign(body, secret, now) }
	long := strings.Repeat("x", 300)
	for name, tc := range map[string]struct {
		body   []byte
		reason string
	}{
		"id not evt_":       {stripetest.Event("ev_1", "customer.subscription.created", apiVersion, now, subObject("sub_a")), "bad_id"},
		"id with a slash":   {stripetest.Event("evt_1/../x", "customer.subscription.created", apiVersion, now, subObject("sub_a")), "bad_id"},
		"id too long":       {stripetest.Event("evt_"+long, "customer.subscription.created", apiVersion, now, subObject("sub_a")), "bad_id"},
		"bad account":       {stripetest.ConnectEvent("evt_2", "customer.subscription.created", apiVersion, "cus_x", now, subObject("sub_a")), "bad_id"},
		"object not sub_":   {stripetest.Event("evt_3", "customer.subscription.created", apiVersion, now, subObject("si_a")), "bad_object"},
		"object with path":  {stripetest.Event("evt_4", "customer.subscription.created", apiVersion, now, subObject("sub_a/../../v1/x")), "bad_object"},
		"session not cs_":   {stripetest.Event("evt_5", "checkout.session.completed", apiVersion, now, map[string]any{"id": "sub_a"}), "bad_object"},
		"customer not cus_": {stripetest.Event("evt_6", "customer.deleted", apiVersion, now, map[string]any{"id": "acct_1"}), "bad_object"},
		"invoice's sub":     {stripetest.Event("evt_7", "invoice.paid", apiVersion, now, stripetest.Invoice("in_1", "sub_"+long, apiVersion)), "bad_object"},
		"created far":       {stripetest.Event("evt_8", "customer.subscription.created", apiVersion, time.Unix(1<<40, 0), subObject("sub_a")), "bad_json"},
	} {
		body, sig := signed(tc.body)
		require.Equal(t, http.StatusBadRequest, b.post(t, body, sig), name)
		require.NotZero(t, b.metricValue(t, `tollgate_stripe_events_rejected_total{reason="`+tc.reason+`"}`), name)
	}
	// a timestamp more than the tolerance ahead: rejected, even with a valid signature
	body := stripetest.Event("evt_9", "customer.subscription.created", apiVersion, now, subObject("sub_a"))
	require.Equal(t, http.StatusBadRequest, b.post(t, body, stripetest.Sign(body, secret, now.Add(6*time.Minute))))
	b.metric(t, `tollgate_stripe_events_rejected_total{reason="too_new"} 1`)
	require.Equal(t, http.StatusBadRequest, b.post(t, body, "t=99999999999999999999,v1="+strings.Repeat("0", 64)))
	require.Zero(t, b.rowsEverywhere(t)-b.count(t, `SELECT count(*) FROM tollgate.customers`), "a rejected webhook wrote something")
	require.Empty(t, b.fake.Requests(), "a rejected webhook made Stripe requests")
	// within the tolerance either way: accepted
	require.Equal(t, http.StatusOK, b.post(t, body, stripetest.Sign(body, secret, now.Add(4*time.Minute))))
	require.Equal(t, "pro", b.plan(t, "alice"))
}

// The subscription events beyond created/updated/deleted, and subscription schedules, re-fetch the
// subscription they concern.
func TestWebhookRefetchesOnEveryEventOfASubscription(t *testing.T) {
	t.Parallel()
	shapes(t, func(t *testing.T, b *testBundle, version string) {
		b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
		b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
		status := []string{"active", "canceled"}
		for i, tc := range []struct {
			typ    string
			object map[string]any
		}{
			{"customer.subscription.pending_update_applied", subObject("sub_a")},
			{"customer.subscription.pending_update_expired", subObject("sub_a")},
			{"subscription_schedule.created", map[string]any{"id": "sub_sched_1", "object": "subscription_schedule", "subscription": "sub_a"}},
			{"subscription_schedule.updated", map[string]any{"id": "sub_sched_1", "object": "subscription_schedule", "subscription": "sub_a"}},
			{"subscription_schedule.expiring", map[string]any{"id": "sub_sched_1", "object": "subscription_schedule", "subscription": "sub_a"}},
			{"subscription_schedule.completed", map[string]any{"id": "sub_sched_1", "object": "subscription_schedule", "subscription": "sub_a"}},
			{"subscription_schedule.aborted", map[string]any{"id": "sub_sched_1", "object": "subscription_schedule", "subscription": "sub_a"}},
			{"subscription_schedule.canceled", map[string]any{"id": "sub_sched_1", "object": "subscription_schedule", "subscription": "sub_a"}},
			{"subscription_schedule.released", map[string]any{"id": "sub_sched_1", "object": "subscription_schedule",
				"subscription": nil, "released_subscription": "sub_a"}},
		} {
			// each event finds the subscription changed since the last
			b.fake.SetStatus("sub_a", status[i%2])
			before := b.fake.Count("/v1/subscriptions/sub_a")
			require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, fmt.Sprintf("evt_%d", i), tc.typ, tc.object), tc.typ)
			require.Equal(t, before+1, b.fake.Count("/v1/subscriptions/sub_a"), tc.typ)
			want := map[string]string{"active": "pro", "canceled": "free"}[status[i%2]]
			require.Equal(t, want, b.plan(t, "alice"), tc.typ)
			b.metric(t, fmt.Sprintf(`tollgate_stripe_events_applied_total{type=%q} 1`, tc.typ))
		}
		// a schedule that governs no subscription yet: acknowledged, nothing fetched
		before := len(b.fake.Requests())
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_s", "subscription_schedule.created",
			map[string]any{"id": "sub_sched_2", "object": "subscription_schedule", "subscription": nil}))
		require.Len(t, b.fake.Requests(), before)
	})
}

// An answer that is not Stripe's JSON (a proxy's 502 page) is counted by its status, not as a network error.
func TestNonJSONAnswerCountedByStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{maxAttempts: 3})
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: proItems})
	b.fake.FailRaw(3, "/v1/subscriptions/sub_a", http.StatusBadGateway, "<html><body>502 Bad Gateway</body></html>")
	require.Equal(t, http.StatusBadGateway, b.deliver(t, "evt_1", "customer.subscription.created", subObject("sub_a")))
	b.metric(t, `tollgate_stripe_api_errors_total{op="subscriptions.get",code="502"} 3`)
	require.Zero(t, b.metricValue(t, `tollgate_stripe_api_errors_total{op="subscriptions.get",code="network"}`))
	// a 4xx page is not retried
	b.fake.FailRaw(1, "/v1/subscriptions/sub_a", http.StatusForbidden, "<html>denied</html>")
	require.Equal(t, http.StatusBadGateway, b.deliver(t, "evt_1", "customer.subscription.created", subObject("sub_a")))
	b.metric(t, `tollgate_stripe_api_errors_total{op="subscriptions.get",code="403"} 1`)
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_1", "customer.subscription.created", subObject("sub_a")))
	require.Equal(t, 5, b.fake.Count("/v1/subscriptions/sub_a"))
}

// A success whose body is not a subscription is counted as invalid_response, and retried.
func TestUndecodableAnswerCountedAsInvalidResponse(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{maxAttempts: 2})
	b.fake.FailRaw(2, "/v1/subscriptions/sub_a", http.StatusOK, "<html>a captive portal</html>")
	require.Equal(t, http.StatusBadGateway, b.deliver(t, "evt_1", "customer.subscription.created", subObject("sub_a")))
	b.metric(t, `tollgate_stripe_api_errors_total{op="subscriptions.get",code="invalid_response"} 2`)
}
