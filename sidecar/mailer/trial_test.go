package mailer

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A trial prompt goes through the same outbox as an upgrade prompt: the sidecar's trial_will_end event becomes
// one email of the stripe.trial_prompt template, naming the plan on trial and when the trial ends.
func TestTrialPromptIsSent(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	ctx := context.Background()
	b.exec(t, `SELECT tollgate.define_plan('pro', false, '{price_pro}', 10)`)
	b.exec(t, `SELECT tollgate.set_setting('trial_prompt', 'trial_ending')`)
	b.customer(t, "alice", "alice@example.test")
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	trialEnd := time.Date(2099, 3, 14, 12, 0, 0, 0, time.UTC)
	_, err := b.sidecar.Exec(ctx, `SELECT * FROM tollgate.sync_subscription('sub_a', 'cus_alice', 'trialing', '{price_pro}',
		'{}', NULL, NULL, false, NULL, now(), trial_start => now() - interval '11 days', trial_end => $1,
		has_payment_method => false)`, trialEnd)
	require.NoError(t, err)
	var wrote bool
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.trial_will_end('sub_a')`).Scan(&wrote))
	require.True(t, wrote)

	f := newFakeResend(t)
	b.start(t, f.provider(t, 5*time.Second), nil)
	rows := b.waitFinal(t, 1)
	require.Equal(t, "sent", rows[0].Status)
	_, delivered := f.snapshot()
	require.Len(t, delivered, 1)
	var msg struct {
		To      []string `json:"to"`
		Subject string   `json:"subject"`
		Text    string   `json:"text"`
	}
	require.NoError(t, json.Unmarshal(delivered[0].Body, &msg))
	require.Equal(t, []string{"alice@example.test"}, msg.To)
	require.Equal(t, "Your pro trial ends on 14 March 2099", msg.Subject)
	require.Contains(t, msg.Text, "no payment method")

	// once per trial
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.trial_will_end('sub_a')`).Scan(&wrote))
	require.False(t, wrote)
	require.Equal(t, int64(1), b.count(t, `SELECT count(*) FROM tollgate.emails`))
}
