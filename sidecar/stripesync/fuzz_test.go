package stripesync_test

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

// processTB is the testing.TB of the first fuzz input in a fuzzing worker, for what lives as long as the worker
// process (one database, fake Stripe and Syncer each): its cleanups are dropped, and everything goes with the
// process (with TOLLGATE_TEST_DATABASE_URL, the worker's database stays on that server).
type processTB struct{ testing.TB }

func (processTB) Cleanup(func()) {}

// fuzzing reports whether this process runs `go test -fuzz` (as its coordinator or a worker) rather than the
// seeds as an ordinary test.
func fuzzing() bool {
	fl := flag.Lookup("test.fuzz")
	return fl != nil && fl.Value.String() != ""
}

var fuzzBundle struct {
	once sync.Once
	b    *testBundle
}

// fuzzSetup is the testBundle shared by the inputs of one fuzzing worker, made at its first input (never in the
// coordinating process, which runs no input).
func fuzzSetup(t *testing.T) *testBundle {
	fuzzBundle.once.Do(func() { fuzzBundle.b = newFuzzBundle(processTB{t}) })
	if fuzzBundle.b == nil {
		t.Fatal("no test bundle: the first input failed to make one")
	}
	return fuzzBundle.b
}

// newFuzzBundle is a testBundle with a customer with a trialing subscription, a Checkout Session and a connected
// account's subscription, so signed events reach every path.
func newFuzzBundle(t testing.TB) *testBundle {
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', 'alice@example.test', 'cus_alice')`)
	b.exec(t, `SELECT tollgate.set_setting('trial_prompt', 'trial_ending')`)
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "trialing", Items: proItems,
		TrialStart: time.Now().Add(-time.Hour).Unix(), TrialEnd: time.Now().Add(72 * time.Hour).Unix()})
	b.fake.PutSubscription(stripetest.Subscription{ID: "sub_c", Account: "acct_1", Customer: "cus_alice", Status: "active",
		Items: proItems, PauseBehavior: "void"})
	b.fake.PutCheckoutSession(stripetest.CheckoutSession{ID: "cs_test_a", ClientReferenceID: "alice", Customer: "cus_alice",
		Subscription: "sub_a"})
	return b
}

// FuzzWebhook sends any body with any Stripe-Signature header to the webhook handler, against a real database
// and the fake Stripe, and holds it to its answers. Mode 0 sends the header as given; 1 signs the body with
// the webhook secret; 2 with the previous secret, the timestamp moved by skew seconds; 3 with another secret.
// A body not signed by a webhook secret within the tolerance is refused with 400 or 413 and changes nothing; a
// signed one is answered 200, 400 or 413, never 500 or 502: with the database and Stripe up, every signed body is either
// an event tollgate applies or ignores, or one it cannot read. `make test` runs it for a few seconds, `make
// fuzz` longer; the seeds run as an ordinary test.
func FuzzWebhook(f *testing.F) {
	now := time.Now()
	seeds := [][]byte{
		stripetest.Event("evt_1", "customer.subscription.created", apiVersion, now, subObject("sub_a")),
		stripetest.Event("evt_2", "customer.subscription.trial_will_end", newAPIVersion, now, subObject("sub_a")),
		stripetest.Event("evt_3", "invoice.paid", newAPIVersion, now, stripetest.Invoice("in_1", "sub_a", stripetest.APIVersionNew)),
		stripetest.Event("evt_4", "invoice.payment_failed", apiVersion, now, stripetest.Invoice("in_2", "sub_a", apiVersion)),
		stripetest.Event("evt_5", "checkout.session.completed", apiVersion, now, map[string]any{"id": "cs_test_a", "object": "checkout.session"}),
		stripetest.Event("evt_6", "customer.deleted", apiVersion, now, map[string]any{"id": "cus_alice", "object": "customer", "deleted": true}),
		stripetest.Event("evt_7", "subscription_schedule.released", apiVersion, now, map[string]any{"id": "sub_sched_1",
			"object": "subscription_schedule", "subscription": nil, "released_subscription": "sub_a"}),
		stripetest.ConnectEvent("evt_8", "customer.subscription.updated", apiVersion, "acct_1", now, subObject("sub_c")),
		stripetest.Event("evt_9", "customer.subscription.updated", apiVersion, now, subObject("sub_gone")),
		stripetest.Event("ev_bad", "customer.subscription.updated", apiVersion, now, subObject("sub_a")),
		stripetest.Event("evt_10", "charge.succeeded", apiVersion, now, map[string]any{"id": "ch_1"}),
		[]byte(`{"id":"evt_11","type":"customer.subscription.updated","data":{"object":{"id":"sub_a/../x"}}}`),
		[]byte(`{"id":"evt_12","type":"x","data":{"object":"not an object"}}`),
		[]byte("not json"),
	}
	for _, s := range seeds {
		for mode := range uint8(4) {
			f.Add(s, stripetest.Sign(s, secret, now), mode, int64(0))
		}
		f.Add(s, "t=1,v1=00", uint8(2), int64(400))
	}
	var seedBundle *testBundle
	if !fuzzing() {
		seedBundle = newFuzzBundle(f) // the seeds, as an ordinary test: cleaned up with f
	}
	f.Fuzz(func(t *testing.T, body []byte, header string, mode uint8, skew int64) {
		b := seedBundle
		if b == nil {
			b = fuzzSetup(t)
		}
		at := time.Now()
		signed, known := true, true
		switch mode % 4 {
		case 0:
			known = false // the header as given: the seeds' are signed, the fuzzer's not
		case 1:
			header = stripetest.Sign(body, secret, at)
		case 2:
			skew %= 24 * 3600
			header = stripetest.Sign(body, oldSecret, at.Add(time.Duration(skew)*time.Second))
			// a margin either side of the 5-minute tolerance: the handler reads the clock a moment later
			if skew > 290 || skew < -290 {
				signed = false
				if skew > -310 && skew < 310 {
					return
				}
			}
		case 3:
			header = stripetest.Sign(body, "whsec_someone_else", at)
			signed = false
		}
		events := b.count(t, `SELECT count(*) FROM tollgate.stripe_events`)
		requests := len(b.fake.Requests())
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", header)
		rec := httptest.NewRecorder()
		b.syncer.ServeHTTP(rec, req)
		code := rec.Code
		switch {
		case !known && code != http.StatusOK && code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge:
			t.Fatalf("answered %d: %s\nbody: %q\nheader: %q", code, rec.Body, body, header)
		case !known:
		case !signed && code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge:
			t.Fatalf("an unsigned body was answered %d: %s\nbody: %q\nheader: %q", code, rec.Body, body, header)
		case !signed && (b.count(t, `SELECT count(*) FROM tollgate.stripe_events`) != events || len(b.fake.Requests()) != requests):
			t.Fatalf("an unsigned body changed something or called Stripe\nbody: %q\nheader: %q", body, header)
		case signed && code != http.StatusOK && code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge:
			t.Fatalf("a signed body was answered %d: %s\nbody: %q", code, rec.Body, body)
		}
	})
}
