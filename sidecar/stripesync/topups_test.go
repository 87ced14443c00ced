package stripesync_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

// topups gives the bundle a feature api_calls (10 a month on free) and two packs: calls_500 (price_calls500,
// 500 calls for a year) and calls_50 (price_calls50, 50 for good).
func (b *testBundle) topups(t testing.TB) {
	t.Helper()
	b.exec(t, `SELECT tollgate.define_feature('api_calls', 'month')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'api_calls', 10)`)
	b.exec(t, `SELECT tollgate.define_topup('calls_500', 'price_calls500', 'api_calls', 500, '365 days')`)
	b.exec(t, `SELECT tollgate.define_topup('calls_50', 'price_calls50', 'api_calls', 50)`)
}

// granted is the granted units customer has left of api_calls.
func (b *testBundle) granted(t testing.TB, customer string) int64 {
	t.Helper()
	var n *int64
	require.NoError(t, b.owner.QueryRow(context.Background(),
		`SELECT coalesce(sum(amount - spent), 0) FROM tollgate.grants WHERE customer = $1 AND feature = 'api_calls'`, customer).Scan(&n))
	return *n
}

func sessionObject(id string) map[string]any {
	return map[string]any{"id": id, "object": "checkout.session"}
}

// A top-up bought through Checkout (payment mode, no Stripe customer, client_reference_id) is granted once:
// the event delivered five times, five at once, and the session's other event, grant one pack.
func TestTopupCheckoutSessionGrantsOnce(t *testing.T) {
	t.Parallel()
	shapes(t, func(t *testing.T, b *testBundle, version string) {
		b.topups(t)
		b.fake.PutCheckoutSession(stripetest.CheckoutSession{ID: "cs_test_pack1", Mode: "payment", ClientReferenceID: "alice",
			Lines: []stripetest.Line{{Price: "price_calls500", Quantity: 2}, {Price: "price_tshirt", Quantity: 1}}})
		for range 5 {
			require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_pack1", "checkout.session.completed", sessionObject("cs_test_pack1")))
		}
		require.EqualValues(t, 1000, b.granted(t, "alice"))
		require.Equal(t, 1, b.fake.Count("/v1/checkout/sessions/cs_test_pack1"), "redeliveries cost no Stripe request")
		b.metric(t, `tollgate_stripe_topups_granted_total 1`)
		b.metric(t, `tollgate_stripe_events_duplicate_total{type="checkout.session.completed"} 4`)

		// the same session's other event: recorded, nothing more granted
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_pack1b", "checkout.session.async_payment_succeeded", sessionObject("cs_test_pack1")))
		require.EqualValues(t, 1000, b.granted(t, "alice"))

		// five deliveries of another purchase at once
		b.fake.PutCheckoutSession(stripetest.CheckoutSession{ID: "cs_test_pack2", Mode: "payment", ClientReferenceID: "alice",
			Lines: []stripetest.Line{{Price: "price_calls50", Quantity: 1}}})
		var wg sync.WaitGroup
		codes := make([]int, 5)
		for i := range 5 {
			wg.Go(func() {
				codes[i] = b.deliverFrom(t, "", version, "evt_pack2", "checkout.session.completed", sessionObject("cs_test_pack2"))
			})
		}
		wg.Wait()
		require.Equal(t, []int{200, 200, 200, 200, 200}, codes)
		require.EqualValues(t, 1050, b.granted(t, "alice"))
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM tollgate.grants WHERE customer = 'alice'`))
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM tollgate.topup_purchases WHERE customer = 'alice' AND granted_at IS NOT NULL`))

		// the units are spent once the month's quota is used up
		for range 10 {
			require.True(t, b.consume(t, "alice"))
		}
		require.True(t, b.consume(t, "alice"))
		require.EqualValues(t, 1049, b.granted(t, "alice"))
	})
}

// A paid invoice with pack prices (of no subscription, with more lines than Stripe embeds) grants once, in both
// shapes of invoice lines (price.id, and pricing.price_details.price since 2025-03-31); invoice.paid and
// invoice.payment_succeeded of one invoice grant once; a session that created an invoice grants under the
// invoice's key, so its session's event and its invoice's event grant once.
func TestTopupPaidInvoiceGrantsOnce(t *testing.T) {
	t.Parallel()
	shapes(t, func(t *testing.T, b *testBundle, version string) {
		b.topups(t)
		b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
		lines := []stripetest.Line{}
		for i := range 11 {
			lines = append(lines, stripetest.Line{Price: fmt.Sprintf("price_sticker%d", i), Quantity: 1})
		}
		lines = append(lines, stripetest.Line{Price: "price_calls50", Quantity: 3}) // the 12th: on the second page
		b.fake.PutInvoice(stripetest.InvoiceRecord{ID: "in_1", Customer: "cus_alice", Lines: lines})
		invoice := stripetest.Invoice("in_1", "", version)
		for i := range 5 {
			require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_in1", "invoice.paid", invoice), "delivery %d", i)
		}
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_in1b", "invoice.payment_succeeded", invoice))
		require.EqualValues(t, 150, b.granted(t, "alice"))
		require.Equal(t, 2, b.fake.Count("/v1/invoices/in_1"), "one fetch per event, none per redelivery")
		require.Equal(t, 2, b.fake.Count("/v1/invoices/in_1/lines"), "the lines past the first page")

		// an unpaid invoice grants nothing
		b.fake.PutInvoice(stripetest.InvoiceRecord{ID: "in_open", Customer: "cus_alice", Status: "open",
			Lines: []stripetest.Line{{Price: "price_calls50", Quantity: 1}}})
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_open", "invoice.paid", stripetest.Invoice("in_open", "", version)))
		require.EqualValues(t, 150, b.granted(t, "alice"))

		// a session with an invoice (invoice_creation), then that invoice's event
		b.fake.PutCheckoutSession(stripetest.CheckoutSession{ID: "cs_test_inv", Mode: "payment", Customer: "cus_alice",
			Invoice: "in_2", Lines: []stripetest.Line{{Price: "price_calls500", Quantity: 1}}})
		b.fake.PutInvoice(stripetest.InvoiceRecord{ID: "in_2", Customer: "cus_alice", Lines: []stripetest.Line{{Price: "price_calls500", Quantity: 1}}})
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_cs_inv", "checkout.session.completed", sessionObject("cs_test_inv")))
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_in2", "invoice.paid", stripetest.Invoice("in_2", "", version)))
		require.EqualValues(t, 650, b.granted(t, "alice"))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.topup_purchases WHERE stripe_object = 'in_2'`))
	})
}

// A purchase whose Stripe customer belongs to nobody is counted, logged without secrets, and waits: the link
// (here the app's set_customer) grants it.
func TestTopupOfNobodyWaitsForItsCustomer(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	b := setup(t, setupOptions{logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	b.topups(t)
	b.fake.PutInvoice(stripetest.InvoiceRecord{ID: "in_x", Customer: "cus_stranger", Lines: []stripetest.Line{{Price: "price_calls50", Quantity: 1}}})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_x", "invoice.paid", stripetest.Invoice("in_x", "", apiVersion)))
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_x2", "invoice.payment_succeeded", stripetest.Invoice("in_x", "", apiVersion)))
	b.metric(t, `tollgate_stripe_topups_unmapped_total 1`)
	require.Contains(t, logs.String(), `"msg":"stripe top-up purchase belongs to no tollgate customer yet`)
	require.Contains(t, logs.String(), `"stripe_customer":"cus_stranger"`)
	require.NotContains(t, logs.String(), stripetest.Key)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.topup_purchases WHERE stripe_object = 'in_x' AND granted_at IS NULL`))

	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_stranger')`)
	require.EqualValues(t, 50, b.granted(t, "alice"))
}

// Without packs, invoice events of no subscription are ignored without a Stripe request, as before; an unpaid
// payment session grants nothing until its delayed payment succeeds.
func TestTopupsOnlyWhenPackedAndPaid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.PutInvoice(stripetest.InvoiceRecord{ID: "in_1", Customer: "cus_a", Lines: []stripetest.Line{{Price: "price_calls50", Quantity: 1}}})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_1", "invoice.paid", stripetest.Invoice("in_1", "", apiVersion)))
	require.Empty(t, b.fake.Requests())
	b.metric(t, `tollgate_stripe_events_ignored_total{type="invoice.paid"} 1`)

	b.topups(t)
	b.fake.PutCheckoutSession(stripetest.CheckoutSession{ID: "cs_test_ach", Mode: "payment", ClientReferenceID: "bob",
		PaymentStatus: "unpaid", Lines: []stripetest.Line{{Price: "price_calls50", Quantity: 1}}})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_2", "checkout.session.completed", sessionObject("cs_test_ach")))
	require.EqualValues(t, 0, b.granted(t, "bob"))
	b.fake.PutCheckoutSession(stripetest.CheckoutSession{ID: "cs_test_ach", Mode: "payment", ClientReferenceID: "bob",
		PaymentStatus: "paid", Lines: []stripetest.Line{{Price: "price_calls50", Quantity: 1}}})
	require.Equal(t, http.StatusOK, b.deliver(t, "evt_3", "checkout.session.async_payment_succeeded", sessionObject("cs_test_ach")))
	require.EqualValues(t, 50, b.granted(t, "bob"))
}

// syncBuffer is a bytes.Buffer for a logger that goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
