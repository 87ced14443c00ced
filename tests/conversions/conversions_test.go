package conversions_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Acceptance: a free customer hits the limit, is prompted, and a subscription webhook makes them pro: one
// conversion attributed to that prompt, and the funnel counts 1 prompted, 1 converted. Replaying the webhook,
// or rewriting the subscription with the same values, writes no second conversion.
func TestConversionAttributedToPrompt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.customer(t, "c")
	b.hitLimit(t, "c", "api")
	emails := b.prompt(t, "c")
	require.Len(t, emails, 1)

	b.subscribe(t, "c", "sub_c", "active", "price_pro")
	got := b.changes(t, "c")
	require.Len(t, got, 1)
	require.Equal(t, "free", got[0].From)
	require.Equal(t, "pro", got[0].To)
	require.Equal(t, "conversion", got[0].Kind)
	require.Equal(t, emails[0], *got[0].EmailID)
	require.Equal(t, b.eventOf(t, emails[0]), *got[0].EventID)
	require.Equal(t, "api", *got[0].Feature)
	require.NotNil(t, got[0].PromptedAt)
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.conversions WHERE customer = 'c' AND email_id = $1`, emails[0]))

	// the same webhook again (the sidecar re-fetches the same subscription), and a write of identical values
	b.subscribe(t, "c", "sub_c", "active", "price_pro")
	b.exec(t, `UPDATE tollgate.subscriptions SET status = status, price_ids = price_ids WHERE stripe_subscription = 'sub_c'`)
	require.Len(t, b.changes(t, "c"), 1)

	f := b.funnel(t)
	for _, name := range []string{"api", "(total)"} {
		r := f[name]
		require.EqualValues(t, 1, r.HitThreshold, name)
		require.EqualValues(t, 1, r.HitLimit, name)
		require.EqualValues(t, 1, r.Prompted, name)
		require.EqualValues(t, 1, r.Converted, name)
		require.EqualValues(t, 1, r.Attributed, name)
		require.EqualValues(t, 0, r.Organic, name)
		require.InDelta(t, 1.0, *r.ConversionRate, 1e-9, name)
		require.GreaterOrEqual(t, *r.MedianSeconds, 0.0, name)
		require.GreaterOrEqual(t, *r.P90Seconds, *r.MedianSeconds, name)
	}
	require.NotContains(t, f, "export")
}

// Acceptance: an upgrade without a prompt is organic; so is one whose prompt was sent 40 days before (window
// 30 days), and one whose prompt was never sent (no email address).
func TestOrganicConversions(t *testing.T) {
	t.Parallel()
	b := setup(t)

	b.customer(t, "plain")
	b.subscribe(t, "plain", "sub_plain", "active", "price_pro")

	b.customer(t, "old")
	b.hitLimit(t, "old", "api")
	require.Len(t, b.prompt(t, "old"), 1)
	b.exec(t, `UPDATE tollgate.emails SET sent_at = sent_at - interval '40 days' WHERE customer = 'old'`)
	b.exec(t, `UPDATE tollgate.events SET created_at = created_at - interval '40 days' WHERE customer = 'old'`)
	b.subscribe(t, "old", "sub_old", "active", "price_pro")

	// no email address: the prompt is skipped, and a skipped prompt prompted nobody
	_, err := b.app.Exec(context.Background(), `SELECT tollgate.set_customer('mute', NULL, 'cus_mute')`)
	require.NoError(t, err)
	b.hitLimit(t, "mute", "export")
	require.Empty(t, b.prompt(t, "mute"))
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.emails WHERE customer = 'mute' AND status = 'skipped'`))
	b.subscribe(t, "mute", "sub_mute", "active", "price_pro")

	for _, c := range []string{"plain", "old", "mute"} {
		got := b.changes(t, c)
		require.Len(t, got, 1, c)
		require.Equal(t, "conversion", got[0].Kind, c)
		require.Nil(t, got[0].EmailID, c)
		require.Nil(t, got[0].EventID, c)
		require.Nil(t, got[0].Feature, c)
		require.Nil(t, got[0].PromptedAt, c)
	}

	f := b.funnel(t)
	// "old" hit its limit 40 days ago: outside the range, but its organic conversion is in it
	require.EqualValues(t, 3, f["(total)"].Converted)
	require.EqualValues(t, 3, f["(total)"].Organic)
	require.EqualValues(t, 0, f["(total)"].Attributed)
	require.EqualValues(t, 1, f["(total)"].HitLimit)
	require.EqualValues(t, 0, f["(total)"].Prompted)
	require.Nil(t, f["(total)"].ConversionRate)
	require.Nil(t, f["(total)"].MedianSeconds)
	// "mute" hit export's limit before converting
	require.EqualValues(t, 1, f["export"].Organic)
	require.EqualValues(t, 1, f["export"].Converted)
	require.NotContains(t, f, "api")
}

// The attribution window comes from the setting attribution_window (what tollgate apply writes from
// conversions.attribution_window).
func TestAttributionWindowSetting(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `INSERT INTO tollgate.settings (key, value) VALUES ('attribution_window', '60 days')`)
	b.customer(t, "c")
	b.hitLimit(t, "c", "api")
	emails := b.prompt(t, "c")
	b.exec(t, `UPDATE tollgate.emails SET sent_at = sent_at - interval '40 days' WHERE customer = 'c'`)
	b.subscribe(t, "c", "sub_c", "active", "price_pro")
	got := b.changes(t, "c")
	require.Len(t, got, 1)
	require.Equal(t, emails[0], *got[0].EmailID)

	b.exec(t, `UPDATE tollgate.settings SET value = '1 day' WHERE key = 'attribution_window'`)
	b.subscribe(t, "c", "sub_c", "canceled", "price_pro")
	b.subscribe(t, "c", "sub_c", "active", "price_pro")
	got = b.changes(t, "c")
	require.Len(t, got, 3)
	require.Nil(t, got[2].EmailID)
}

// The latest prompt sent within the window wins.
func TestLatestPromptWins(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.customer(t, "c")
	b.hitLimit(t, "c", "api")
	first := b.prompt(t, "c")
	b.hitLimit(t, "c", "export")
	second := b.prompt(t, "c")
	b.exec(t, `UPDATE tollgate.emails SET sent_at = sent_at - interval '1 hour' WHERE id = $1`, first[0])
	b.subscribe(t, "c", "sub_c", "trialing", "price_pro")
	got := b.changes(t, "c")
	require.Len(t, got, 1)
	require.Equal(t, second[0], *got[0].EmailID)
	require.Equal(t, "export", *got[0].Feature)

	f := b.funnel(t)
	require.EqualValues(t, 1, f["export"].Attributed)
	require.EqualValues(t, 0, f["api"].Attributed)
	require.EqualValues(t, 1, f["api"].Prompted)
	require.InDelta(t, 0.0, *f["api"].ConversionRate, 1e-9)
	require.EqualValues(t, 1, f["(total)"].Prompted)
	require.EqualValues(t, 1, f["(total)"].Attributed)
}

// Acceptance: a downgrade is churn, and an upgrade after it is a second conversion; paid to paid is a change.
func TestChurnChangeAndSecondConversion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.customer(t, "c")
	b.hitLimit(t, "c", "api")
	emails := b.prompt(t, "c")
	b.subscribe(t, "c", "sub_c", "active", "price_pro")
	b.subscribe(t, "c", "sub_c", "canceled", "price_pro")
	b.subscribe(t, "c", "sub_c2", "active", "price_pro")
	b.subscribe(t, "c", "sub_c3", "active", "price_team")
	b.subscribe(t, "c", "sub_c3", "canceled", "price_team")

	got := b.changes(t, "c")
	kinds := make([]string, len(got))
	for i, c := range got {
		kinds[i] = c.Kind + " " + c.From + "->" + c.To
	}
	require.Equal(t, []string{
		"conversion free->pro", "churn pro->free", "conversion free->pro", "change pro->team", "change team->pro",
	}, kinds)
	// both conversions are within the window of the one prompt
	require.Equal(t, emails[0], *got[0].EmailID)
	require.Equal(t, emails[0], *got[2].EmailID)
	for _, i := range []int{1, 3, 4} {
		require.Nil(t, got[i].EmailID)
		require.Nil(t, got[i].Feature)
	}
	require.EqualValues(t, 2, b.count(t, `SELECT count(*) FROM tollgate.conversions WHERE customer = 'c'`))

	// the funnel counts customers: one converted
	f := b.funnel(t)
	require.EqualValues(t, 1, f["(total)"].Converted)
	require.EqualValues(t, 1, f["(total)"].Attributed)
}

// A prompt sent while the customer was on a paid plan (for a paid plan's limit) does not get the credit for a
// later conversion from the free plan.
func TestPromptOnAnotherPlanIsNotAttributed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_limit('pro', 'api', 2)`)
	b.customer(t, "c")
	b.subscribe(t, "c", "sub_c", "active", "price_pro")
	b.hitLimit(t, "c", "api")
	require.Len(t, b.prompt(t, "c"), 1)
	b.subscribe(t, "c", "sub_c", "canceled", "price_pro")
	b.subscribe(t, "c", "sub_c2", "active", "price_pro")
	got := b.changes(t, "c")
	require.Len(t, got, 3)
	require.Equal(t, "conversion", got[2].Kind)
	require.Nil(t, got[2].EmailID)
	// and the funnel, of free customers, has no cohort for it
	f := b.funnel(t)
	require.NotContains(t, f, "api")
	require.EqualValues(t, 1, f["(total)"].Organic) // one customer, converted twice
	require.EqualValues(t, 1, f["(total)"].Converted)
}

// Plan changes of one customer within one transaction are one transition: a plan removed and replaced by
// another at once is a change, not a churn and a conversion; there and back is nothing.
func TestPlanChangesFoldWithinATransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.exec(t, `SELECT tollgate.define_plan('legacy', false, '{price_legacy}', 30)`)
	b.customer(t, "c")
	b.subscribe(t, "c", "sub_new", "active", "price_pro")
	b.subscribe(t, "c", "sub_old", "active", "price_legacy")
	require.Len(t, b.changes(t, "c"), 2) // conversion free->pro, change pro->legacy

	// remove_plan sets the customer's plan to NULL (ON DELETE SET NULL), then recomputes it from the
	// subscriptions: pro
	b.exec(t, `SELECT tollgate.remove_plan('legacy')`)
	got := b.changes(t, "c")
	require.Len(t, got, 3)
	require.Equal(t, "change", got[2].Kind)
	require.Equal(t, "legacy", got[2].From)
	require.Equal(t, "pro", got[2].To)

	tx, err := b.owner.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE tollgate.customers SET plan = NULL WHERE customer = 'c'`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE tollgate.customers SET plan = 'team' WHERE customer = 'c'`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE tollgate.customers SET plan = 'pro' WHERE customer = 'c'`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Len(t, b.changes(t, "c"), 3)

	// a rolled-back plan change leaves nothing either
	tx, err = b.owner.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE tollgate.customers SET plan = NULL WHERE customer = 'c'`)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	require.Len(t, b.changes(t, "c"), 3)
}
