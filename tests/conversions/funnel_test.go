package conversions_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/funnel"
)

// Customers at each stage, per feature and in total (each customer once):
//
//	a: api limit, prompted, converted      -> api attributed
//	b: api and export limits, prompted on both, not converted
//	c: api threshold only (2 of 2 calls: the 100% threshold event, never blocked)
//	d: no events, converted                -> total organic
//	e: export limit, no email address (prompt skipped), converted -> export organic
func TestFunnelStages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, c := range []string{"a", "b", "c", "d"} {
		b.customer(t, c)
	}
	_, err := b.app.Exec(ctx, `SELECT tollgate.set_customer('e', NULL, 'cus_e')`)
	require.NoError(t, err)
	b.hitLimit(t, "a", "api")
	b.hitLimit(t, "b", "api")
	b.hitLimit(t, "b", "export")
	_, err = b.app.Exec(ctx, `SELECT tollgate.consume('c', 'api', 2)`)
	require.NoError(t, err)
	b.hitLimit(t, "e", "export")
	for _, c := range []string{"a", "b", "e"} {
		b.prompt(t, c)
	}
	b.subscribe(t, "a", "sub_a", "active", "price_pro")
	b.subscribe(t, "d", "sub_d", "active", "price_pro")
	b.subscribe(t, "e", "sub_e", "active", "price_team")

	type stages struct{ threshold, limit, prompted, converted, attributed, organic int64 }
	f := b.funnel(t)
	for name, want := range map[string]stages{
		"api":     {3, 2, 2, 1, 1, 0},
		"export":  {2, 2, 1, 1, 0, 1},
		"(total)": {4, 3, 2, 3, 1, 2},
	} {
		r := f[name]
		require.Equal(t, want, stages{r.HitThreshold, r.HitLimit, r.Prompted, r.Converted, r.Attributed, r.Organic}, name)
	}
	require.Len(t, f, 3)
	require.InDelta(t, 0.5, *f["api"].ConversionRate, 1e-9)
	require.InDelta(t, 0.0, *f["export"].ConversionRate, 1e-9)
	require.InDelta(t, 0.5, *f["(total)"].ConversionRate, 1e-9)
	require.Nil(t, f["export"].MedianSeconds)

	// rows come per feature, sorted, then the total
	rows, err := funnel.Query(ctx, b.sidecar, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	names := []string{}
	for _, r := range rows {
		names = append(names, r.Name())
	}
	require.Equal(t, []string{"api", "export", "(total)"}, names)
}

// The cohort is the events of [since, until); prompts and attributed conversions follow their events, organic
// conversions count in the range they happen in.
func TestFunnelRange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.customer(t, "a")
	b.customer(t, "d")
	b.hitLimit(t, "a", "api")
	b.prompt(t, "a")
	b.subscribe(t, "a", "sub_a", "active", "price_pro")
	b.subscribe(t, "d", "sub_d", "active", "price_pro")
	// a's events and prompt a week ago, converted now; d converted organically now
	b.exec(t, `UPDATE tollgate.events SET created_at = created_at - interval '7 days'`)
	b.exec(t, `UPDATE tollgate.emails SET sent_at = sent_at - interval '7 days'`)
	b.exec(t, `UPDATE tollgate.plan_changes SET prompted_at = prompted_at - interval '7 days' WHERE feature IS NOT NULL`)

	var now time.Time
	require.NoError(t, b.owner.QueryRow(context.Background(), `SELECT now()`).Scan(&now))
	week := b.funnelRange(t, now.Add(-8*24*time.Hour), now.Add(-6*24*time.Hour))
	require.EqualValues(t, 1, week["api"].Prompted)
	require.EqualValues(t, 1, week["api"].Attributed)  // converted after the range: still this cohort's
	require.EqualValues(t, 0, week["(total)"].Organic) // d converted after the range
	require.InDelta(t, 7*24*3600, *week["api"].MedianSeconds, 60)

	today := b.funnelRange(t, now.Add(-time.Hour), now.Add(time.Hour))
	require.NotContains(t, today, "api")
	require.EqualValues(t, 0, today["(total)"].Attributed) // a's prompt belongs to last week
	require.EqualValues(t, 1, today["(total)"].Organic)
	require.EqualValues(t, 1, today["(total)"].Converted)

	// until is exclusive, and an empty range has a total row of zeros
	empty := b.funnelRange(t, now.Add(-7*24*time.Hour+time.Hour), now.Add(-time.Hour))
	require.Len(t, empty, 1)
	require.Zero(t, empty["(total)"].HitThreshold)
	require.Zero(t, empty["(total)"].Converted)
}

func TestFunnelBadRange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, stmt := range []string{
		`SELECT * FROM tollgate.funnel(NULL, now())`,
		`SELECT * FROM tollgate.funnel(now(), NULL)`,
		`SELECT * FROM tollgate.funnel(now(), now() - interval '1 day')`,
	} {
		_, err := b.sidecar.Exec(ctx, stmt)
		requireCode(t, err, "TG422")
	}
	_, err := funnel.Query(ctx, b.sidecar, time.Now(), time.Now().Add(-time.Hour))
	require.True(t, errors.Is(err, funnel.ErrBadRange), "%v", err)
}

// The sidecar (serve, report) may read the funnel; the app may not.
func TestFunnelPrivileges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, stmt := range []string{
		`SELECT * FROM tollgate.funnel(now() - interval '1 day', now())`,
		`SELECT * FROM tollgate.unmapped_subscriptions()`,
	} {
		_, err := b.app.Exec(ctx, stmt)
		requireCode(t, err, "42501")
		_, err = b.sidecar.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	for _, stmt := range []string{
		`SELECT * FROM tollgate.plan_changes`,
		`SELECT * FROM tollgate.conversions`,
		`SELECT tollgate._attribution_window()`,
	} {
		_, err := b.sidecar.Exec(ctx, stmt)
		requireCode(t, err, "42501")
	}
}

func TestUnmappedSubscriptions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.customer(t, "known")
	b.subscribe(t, "known", "sub_ok", "active", "price_pro")
	b.subscribe(t, "known", "sub_noplan", "active", "price_unknown")
	b.subscribe(t, "stranger", "sub_nocustomer", "trialing", "price_pro")
	b.subscribe(t, "stranger", "sub_neither", "past_due", "price_unknown")
	b.subscribe(t, "stranger", "sub_ended", "canceled", "price_unknown")

	a, err := funnel.QueryAttention(ctx, b.sidecar)
	require.NoError(t, err)
	got := map[string]string{}
	for _, s := range a.Unmapped {
		got[s.StripeSubscription] = s.Problem
	}
	require.Equal(t, map[string]string{
		"sub_noplan":     "no plan",
		"sub_nocustomer": "no customer",
		"sub_neither":    "no customer, no plan",
	}, got)
	require.Contains(t, a.Emails, "dead")
	require.Zero(t, a.DeadEmails())
}
