package stripesync_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

func benchWebhook(b *testing.B, sameEvent bool) {
	var logs bytes.Buffer
	tb := setup(b, setupOptions{logger: slog.New(slog.NewTextHandler(&logs, nil))})
	tb.fake.PutCustomer(stripetest.Customer{ID: "cus_Bench"})
	tb.fake.PutSubscription(stripetest.Subscription{ID: "sub_Bench", Customer: "cus_Bench", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro_monthly"}}})
	tb.exec(b, `SELECT tollgate.set_customer('bench', NULL, 'cus_Bench')`)
	deliver := func(i int) {
		id := fmt.Sprintf("evt_Bench%d", i)
		if sameEvent {
			id = "evt_Bench"
		}
		body := stripetest.Event(id, "customer.subscription.updated", apiVersion, time.Now(), subObject("sub_Bench"))
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", stripetest.Sign(body, secret, time.Now()))
		rec := httptest.NewRecorder()
		tb.syncer.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("webhook answered %d: %s (%s)", rec.Code, rec.Body.String(), logs.String())
		}
	}
	deliver(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		deliver(i + 1)
	}
}

// A new event: verify the signature, re-fetch the subscription (from the in-process fake Stripe), upsert it
// and record the event, in one transaction.
func BenchmarkWebhookVerifyAndApply(b *testing.B) { benchWebhook(b, false) }

// A redelivered event: verify, see it was recorded, answer 200.
func BenchmarkWebhookDuplicate(b *testing.B) { benchWebhook(b, true) }
