package stripesync_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

// customer.subscription.trial_will_end writes the trial prompt's event when the trial has no payment method
// and stripe.trial_prompt is set, once per trial; the outbox turns it into an email of that template; a trial
// that turns into a paid subscription is a trial conversion, attributed to the prompt.
func TestTrialWillEndPromptsAndConverts(t *testing.T) {
	t.Parallel()
	shapes(t, func(t *testing.T, b *testBundle, version string) {
		ctx := context.Background()
		trialStart := time.Now().Add(-11 * 24 * time.Hour).Truncate(time.Second)
		trialEnd := time.Now().Add(3 * 24 * time.Hour).Truncate(time.Second)
		trial := func(id, cus string) stripetest.Subscription {
			return stripetest.Subscription{ID: id, Customer: cus, Status: "trialing", Items: proItems,
				TrialStart: trialStart.Unix(), TrialEnd: trialEnd.Unix()}
		}
		for _, c := range []string{"alice", "bob", "carol"} {
			b.exec(t, `SELECT tollgate.set_customer($1, $2, $3)`, c, c+"@example.test", "cus_"+c)
		}
		b.fake.PutSubscription(trial("sub_a", "cus_alice"))
		withCard := trial("sub_b", "cus_bob")
		withCard.DefaultPaymentMethod = "pm_card_visa"
		b.fake.PutSubscription(withCard)
		b.fake.PutSubscription(trial("sub_c", "cus_carol"))
		b.fake.PutCustomer(stripetest.Customer{ID: "cus_carol", DefaultPaymentMethod: "pm_card_mastercard"})
		events := func() int { return b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'trial_will_end'`) }

		// without stripe.trial_prompt: the subscription is re-fetched, no prompt
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_0", "customer.subscription.trial_will_end", subObject("sub_a")))
		require.Equal(t, "pro", b.plan(t, "alice"))
		require.Zero(t, events())
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions WHERE stripe_subscription = 'sub_a'
			AND trial_start = $1 AND trial_end = $2 AND has_payment_method = false`, trialStart, trialEnd))

		b.exec(t, `SELECT tollgate.set_setting('trial_prompt', 'trial_ending')`)
		for i, sub := range []string{"sub_a", "sub_b", "sub_c"} {
			require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_1"+sub, "customer.subscription.trial_will_end", subObject(sub)))
			require.Equal(t, 1, events(), "sub %d", i)
		}
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions WHERE has_payment_method`)-1,
			"bob's card is on the subscription, carol's on the customer")
		// once per trial: Stripe sends the event again (or another replica does)
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_2", "customer.subscription.trial_will_end", subObject("sub_a")))
		require.Equal(t, 1, events())
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'trial_will_end' AND customer = 'alice'
			AND feature = '' AND plan = 'pro' AND period_start = $1 AND period_end = $2`, trialStart, trialEnd))

		// the outbox makes it an email of the trial template
		var n int
		require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_collect(500)`).Scan(&n))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.emails WHERE customer = 'alice' AND template = 'trial_ending'
			AND status = 'pending' AND to_email = 'alice@example.test'`))
		// sent (as the mailer records it)
		var id int64
		var attempt int
		require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT id, attempt FROM tollgate.outbox_claim('w', 1)`).Scan(&id, &attempt))
		_, err := b.sidecar.Exec(ctx, `SELECT * FROM tollgate.outbox_begin($1, $2, 'log', 'a@b.test', 's', 't', 'h')`, id, attempt)
		require.NoError(t, err)
		_, err = b.sidecar.Exec(ctx, `SELECT tollgate.outbox_sent($1, 'log', 'x')`, id)
		require.NoError(t, err)

		// alice adds a card and pays: a trial conversion attributed to the prompt; carol pays without a prompt;
		// bob's trial ends unpaid
		for sub, status := range map[string]string{"sub_a": "active", "sub_c": "active", "sub_b": "incomplete_expired"} {
			b.fake.SetStatus(sub, status)
			require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_3"+sub, "customer.subscription.updated", subObject(sub)))
		}
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.trial_conversions WHERE customer = 'alice' AND plan = 'pro'
			AND email_id = $1 AND prompted_at IS NOT NULL AND trial_start = $2 AND trial_end = $3`, id, trialStart, trialEnd))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.trial_conversions WHERE customer = 'carol' AND email_id IS NULL`))
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM tollgate.trial_conversions`))
		// a paid subscription that stays paid is no second conversion
		require.Equal(t, http.StatusOK, b.deliverFrom(t, "", version, "evt_4", "invoice.paid", stripetest.Invoice("in_4", "sub_a", version)))
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM tollgate.trial_conversions`))
		// the plan changed when the trial began (a conversion in plan_changes); paying changes no plan
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM tollgate.plan_changes WHERE customer IN ('alice', 'carol')`))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.plan_changes WHERE customer = 'bob' AND kind = 'churn'`))

		var trials, prompted, converted, attributed, organic int64
		var rate, promptedRate *float64
		require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT * FROM tollgate.trial_funnel(now() - interval '1 day', now() + interval '7 days')`).
			Scan(&trials, &prompted, &converted, &attributed, &organic, &rate, &promptedRate))
		require.Equal(t, []int64{3, 1, 2, 1, 1}, []int64{trials, prompted, converted, attributed, organic})
		require.InDelta(t, 2.0/3, *rate, 1e-9)
		require.InDelta(t, 1.0, *promptedRate, 1e-9)
		require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT trials FROM tollgate.trial_funnel(now() + interval '7 days', now() + interval '8 days')`).Scan(&trials))
		require.Zero(t, trials)
	})
}
