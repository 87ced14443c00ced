package stripetest

import (
	"encoding/json"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// Event is a webhook event body: id, type, the API version it was rendered with, when Stripe created it, and
// data.object.
func Event(id, typ, apiVersion string, created time.Time, object map[string]any) []byte {
	return ConnectEvent(id, typ, apiVersion, "", created, object)
}

// ConnectEvent is Event from a connected account (Event.account = account; "" = the platform's own event).
func ConnectEvent(id, typ, apiVersion, account string, created time.Time, object map[string]any) []byte {
	ev := map[string]any{
		"id": id, "object": "event", "type": typ, "api_version": apiVersion, "created": created.Unix(),
		"livemode": false, "pending_webhooks": 1,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
		"data":    map[string]any{"object": object},
	}
	if account != "" {
		ev["account"] = account
	}
	body, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return body
}

// Sign is the Stripe-Signature header of body signed with secret at ts, made by stripe-go's test helper.
func Sign(body []byte, secret string, ts time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: ts}).Header
}
