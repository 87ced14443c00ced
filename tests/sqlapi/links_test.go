package sqlapi_test

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/upgrade"
)

const linkSecret = "a-link-secret-of-some-length-0123456789"

// links turns upgrade links on as the sidecar does at start-up, with secret, and returns its signer.
func (b *bundle) links(t *testing.T, secret, previous string) *upgrade.Signer {
	t.Helper()
	s, err := upgrade.NewSigner(secret, previous)
	require.NoError(t, err)
	_, err = b.db.Conn(t, b.db.SidecarURL).Exec(context.Background(),
		`SELECT tollgate.configure_upgrade_links($1, 'https://billing.example.test/', interval '30 days')`, s.KeyHex())
	require.NoError(t, err)
	return s
}

// upgradeLink calls tollgate.upgrade_link as the app; "" for NULL.
func upgradeLink(t *testing.T, q querier, customer, feature string) string {
	t.Helper()
	var link *string
	require.NoError(t, q.QueryRow(context.Background(), `SELECT tollgate.upgrade_link($1, $2)`, customer, feature).Scan(&link))
	if link == nil {
		return ""
	}
	return *link
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	tok, ok := strings.CutPrefix(link, "https://billing.example.test/upgrade/")
	require.True(t, ok, link)
	return tok
}

// A link minted in SQL (HMAC-SHA256 over the built-in sha256, no pgcrypto) is one Go's crypto/hmac verifies: the
// customer (any characters), the feature, the latest limit_reached event, the variant and the expiry come back.
// Without links configured the app gets NULL; the app cannot read the key, nor configure links.
func TestUpgradeLinkMintedInSQLVerifiesInGo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "month", "hard", []int32{100}, ptr[int64](1))
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	require.Empty(t, upgradeLink(t, app, "alice", "api_calls"), "links off: NULL, the app shows its static page")

	signer := b.links(t, linkSecret, "")
	for _, customer := range []string{"alice", "user|42|x", "Zoë 🚀 " + strings.Repeat("é", 240), "a.b/c?d=e#f"} {
		call(t, app, "consume", customer, "api_calls", 1)
		v := call(t, app, "consume", customer, "api_calls", 1)
		require.False(t, v.Allowed)
		var event int64
		require.NoError(t, b.owner.QueryRow(ctx, `SELECT id FROM tollgate.events WHERE customer = $1 AND kind = 'limit_reached'`, customer).Scan(&event))

		link := upgradeLink(t, app, customer, "api_calls")
		require.Regexp(t, `^https://billing\.example\.test/upgrade/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$`, link)
		_, err := url.Parse(link)
		require.NoError(t, err)
		p, sig, err := signer.Verify(tokenOf(t, link), time.Now())
		require.NoError(t, err, customer)
		require.Equal(t, customer, p.Customer)
		require.Equal(t, "api_calls", p.Feature)
		require.Equal(t, event, p.EventID)
		require.Zero(t, p.EmailID)
		require.Empty(t, p.Variant)
		require.WithinDuration(t, time.Now().Add(30*24*time.Hour), p.Expires, time.Minute)
		require.Len(t, sig, 64)
	}

	// the same payload minted by SQL and by Go is the same token
	expires := time.Now().Add(time.Hour).Truncate(time.Second)
	var sqlToken string
	require.NoError(t, b.owner.QueryRow(ctx, `SELECT tollgate._link_token(k, 'bob|x', 'api_calls', 7, 9, 'short', $1) FROM tollgate.link_keys k`,
		expires).Scan(&sqlToken))
	require.Equal(t, signer.Mint(upgrade.Payload{Customer: "bob|x", Feature: "api_calls", EventID: 7, EmailID: 9, Variant: "short", Expires: expires}), sqlToken)

	// the key is the owner's: the app and the sidecar cannot read it; the app cannot set it
	for _, url := range []string{b.db.AppURL, b.db.SidecarURL, b.db.AdminURL} {
		_, err := b.db.Conn(t, url).Exec(ctx, `SELECT * FROM tollgate.link_keys`)
		requireCode(t, err, "42501")
	}
	for _, stmt := range []string{
		`SELECT tollgate.configure_upgrade_links(repeat('ab', 32), 'https://evil.test', interval '1 day')`,
		`SELECT tollgate.disable_upgrade_links()`,
		`SELECT * FROM tollgate.record_click('alice', 'api_calls', NULL, NULL, NULL, repeat('0', 64))`,
	} {
		_, err := app.Exec(ctx, stmt)
		requireCode(t, err, "42501")
	}
	_, err := app.Exec(ctx, `SELECT tollgate.upgrade_link('alice', 'nope')`)
	requireCode(t, err, "TG404")

	// links off again: NULL
	_, err = b.db.Conn(t, b.db.SidecarURL).Exec(ctx, `SELECT tollgate.disable_upgrade_links()`)
	require.NoError(t, err)
	require.Empty(t, upgradeLink(t, app, "alice", "api_calls"))
}

// Rotation: a link minted under the old secret still verifies while the sidecar has it as the previous one;
// links minted from then on use the new one; once the old secret is dropped, its links are refused.
func TestUpgradeLinkRotation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "month", "hard", []int32{100}, ptr[int64](0))
	app := b.db.Conn(t, b.db.AppURL)
	old := b.links(t, "the-old-secret-0123456789", "")
	oldLink := upgradeLink(t, app, "alice", "api_calls")
	rotated := b.links(t, "the-new-secret-0123456789", "the-old-secret-0123456789")
	newLink := upgradeLink(t, app, "alice", "api_calls")
	require.NotEqual(t, tokenOf(t, oldLink), tokenOf(t, newLink))
	for _, l := range []string{oldLink, newLink} {
		_, _, err := rotated.Verify(tokenOf(t, l), time.Now())
		require.NoError(t, err)
	}
	_, _, err := old.Verify(tokenOf(t, newLink), time.Now())
	require.ErrorIs(t, err, upgrade.ErrSignature)
	done, err := upgrade.NewSigner("the-new-secret-0123456789", "")
	require.NoError(t, err)
	_, _, err = done.Verify(tokenOf(t, oldLink), time.Now())
	require.ErrorIs(t, err, upgrade.ErrSignature)
}

// Assignment is a hash of customer and feature: the same every time, close to the weights over 10,000
// customers; a customer prompted keeps their variant when the weights change or a variant is added, and sees
// it in the 402's message, the event and the link.
func TestVariantAssignmentStableAndWeighted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](0)) // every call of a free customer is a prompt
	b.exec(t, `SELECT tollgate.define_variant('f', 'control', 50)`)
	b.exec(t, `SELECT tollgate.define_variant('f', 'short', 50, 'Out of calls: one click to upgrade.')`)
	ctx := context.Background()

	shares := func(n int) map[string]int {
		rows, err := b.owner.Query(ctx, `SELECT tollgate._variant('c' || i, 'f'), count(*) FROM generate_series(1, $1) i GROUP BY 1`, n)
		require.NoError(t, err)
		out := map[string]int{}
		for rows.Next() {
			var v string
			var c int
			require.NoError(t, rows.Scan(&v, &c))
			out[v] = c
		}
		require.NoError(t, rows.Err())
		return out
	}
	first := shares(10000)
	require.Equal(t, first, shares(10000), "the same assignment every time")
	require.InDelta(t, 5000, first["control"], 250, "%v", first) // 5 standard deviations: 5 * sqrt(10000 * .5 * .5)
	require.InDelta(t, 5000, first["short"], 250, "%v", first)
	// another feature assigns independently of this one
	b.feature(t, "g", "month", "hard", []int32{100}, ptr[int64](0))
	b.exec(t, `SELECT tollgate.define_variant('g', 'control', 50)`)
	b.exec(t, `SELECT tollgate.define_variant('g', 'short', 50)`)
	require.EqualValues(t, 10000, b.count(t, `SELECT count(*) FROM generate_series(1, 10000) i`))
	same := b.count(t, `SELECT count(*) FROM generate_series(1, 10000) i WHERE tollgate._variant('c' || i, 'f') = tollgate._variant('c' || i, 'g')`)
	require.InDelta(t, 5000, same, 250)

	// 1000 customers are prompted (a blocked call writes their limit_reached event)
	app := b.appPool(t, 4)
	_, err := app.Exec(ctx, `SELECT count(*) FROM generate_series(1, 1000) i, tollgate.consume('c' || i, 'f') v WHERE NOT v.allowed`)
	require.NoError(t, err)
	require.EqualValues(t, 1000, b.count(t, `SELECT count(*) FROM tollgate.variant_assignments WHERE feature = 'f'`))
	require.EqualValues(t, 0, b.count(t, `SELECT count(*) FROM tollgate.events e JOIN tollgate.variant_assignments a USING (customer, feature)
		WHERE e.kind = 'limit_reached' AND e.variant IS DISTINCT FROM a.variant`))
	before := map[string]string{}
	rows, err := b.owner.Query(ctx, `SELECT customer, variant FROM tollgate.events WHERE feature = 'f' AND kind = 'limit_reached'`)
	require.NoError(t, err)
	for rows.Next() {
		var c, v string
		require.NoError(t, rows.Scan(&c, &v))
		before[c] = v
	}
	require.Len(t, before, 1000)

	// the weights change and a variant is added: the prompted keep theirs, the rest follow the new weights
	b.exec(t, `SELECT tollgate.define_variant('f', 'control', 10)`)
	b.exec(t, `SELECT tollgate.define_variant('f', 'long', 80, 'A longer message.')`)
	for c, v := range before {
		var now, msg string
		require.NoError(t, b.owner.QueryRow(ctx, `SELECT tollgate._variant($1, 'f')`, c).Scan(&now))
		require.Equal(t, v, now, c)
		require.NoError(t, app.QueryRow(ctx, `SELECT message FROM tollgate.consume($1, 'f')`, c).Scan(&msg))
		if v == "short" {
			require.Equal(t, "Out of calls: one click to upgrade.", msg)
		} else {
			require.NotEqual(t, "A longer message.", msg)
		}
	}
	later := b.count(t, `SELECT count(*) FROM generate_series(1001, 11000) i WHERE tollgate._variant('c' || i, 'f') = 'long'`)
	// the new customers follow the new weights: long has 80 of 10 + 50 + 80
	require.InDelta(t, 10000*80.0/140, later, 5*math.Sqrt(10000*(80.0/140)*(60.0/140)))

	// the link carries the variant
	signer := b.links(t, linkSecret, "")
	p, _, err := signer.Verify(tokenOf(t, upgradeLink(t, app, "c1", "f")), time.Now())
	require.NoError(t, err)
	require.Equal(t, before["c1"], p.Variant)

	// a removed variant's customers are assigned again at their next prompt
	b.exec(t, `SELECT tollgate.remove_variant('f', 'short')`)
	for c, v := range before {
		if v != "short" {
			continue
		}
		var now string
		require.NoError(t, b.owner.QueryRow(ctx, `SELECT tollgate._variant($1, 'f')`, c).Scan(&now))
		require.Contains(t, []string{"control", "long"}, now)
		break
	}
}

// One click per link and minute; what the redirect needs comes back (plan, paying, Stripe customer, email).
func TestRecordClickOncePerMinute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "month", "hard", []int32{100}, ptr[int64](0))
	b.exec(t, `SELECT tollgate.set_customer('alice', 'alice@example.test')`)
	b.exec(t, `INSERT INTO tollgate.stripe_links (stripe_customer, customer, source) VALUES ('cus_fromcheckout', 'alice', 'checkout')`)
	sidecar := b.db.Conn(t, b.db.SidecarURL)
	ctx := context.Background()
	type click struct {
		ID               int64
		Repeated, Paying bool
		Plan, Stripe     *string
		Email            *string
	}
	rec := func(customer, sig string, event *int64) click {
		var c click
		require.NoError(t, sidecar.QueryRow(ctx, `SELECT click_id, repeated, paying, plan, stripe_customer, email
			FROM tollgate.record_click($1, 'api_calls', $2, NULL, NULL, $3)`, customer, event, sig).
			Scan(&c.ID, &c.Repeated, &c.Paying, &c.Plan, &c.Stripe, &c.Email))
		return c
	}
	sig := strings.Repeat("ab", 32)
	gone := int64(999999) // a pruned event: recorded as NULL
	first := rec("alice", sig, &gone)
	require.False(t, first.Repeated)
	require.False(t, first.Paying)
	require.Nil(t, first.Plan)
	require.Equal(t, "cus_fromcheckout", *first.Stripe, "a Stripe customer found in Stripe")
	require.Equal(t, "alice@example.test", *first.Email)
	second := rec("alice", sig, &gone)
	require.True(t, second.Repeated)
	require.Equal(t, first.ID, second.ID)
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.link_clicks WHERE event_id IS NULL`))
	// another link of the same customer is another click
	require.NotEqual(t, first.ID, rec("alice", strings.Repeat("cd", 32), nil).ID)
	// a stranger: no plan, no email, no Stripe customer
	nobody := rec("nobody", strings.Repeat("ef", 32), nil)
	require.False(t, nobody.Paying)
	require.Nil(t, nobody.Stripe)
	require.Nil(t, nobody.Email)

	// where it led; a session another click has is refused
	var ok bool
	require.NoError(t, sidecar.QueryRow(ctx, `SELECT tollgate.record_click_target($1, 'checkout', 'cs_test_a')`, first.ID).Scan(&ok))
	require.True(t, ok)
	require.NoError(t, sidecar.QueryRow(ctx, `SELECT tollgate.record_click_target($1, 'checkout', 'cs_test_a')`, nobody.ID).Scan(&ok))
	require.False(t, ok)
	_, err := sidecar.Exec(ctx, `SELECT tollgate.record_click_target($1, 'portal', 'cs_test_b')`, first.ID)
	requireCode(t, err, "TG422")
}

// experimentRow mirrors tollgate.experiment_results.
type experimentRow struct {
	Variant                                string
	Weight                                 *int32
	HitLimit, Prompted, Clicked, Converted int64
	Rate, Low, High, Difference, P         *float64
}

func experimentResults(t *testing.T, q *pgxpool.Pool, feature string, since, until time.Time) []experimentRow {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT * FROM tollgate.experiment_results($1, $2, $3)`, feature, since, until)
	require.NoError(t, err)
	var out []experimentRow
	for rows.Next() {
		var r experimentRow
		require.NoError(t, rows.Scan(&r.Variant, &r.Weight, &r.HitLimit, &r.Prompted, &r.Clicked, &r.Converted,
			&r.Rate, &r.Low, &r.High, &r.Difference, &r.P))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// wilson and twoProportionP are the formulas, written out here in Go to check the SQL against.
func wilson(x, n float64) (low, high float64) {
	const z = 1.959963984540054
	p := x / n
	center := (p + z*z/(2*n)) / (1 + z*z/n)
	half := z * math.Sqrt(p*(1-p)/n+z*z/(4*n*n)) / (1 + z*z/n)
	return center - half, center + half
}

func twoProportionP(x1, n1, x2, n2 float64) float64 {
	pooled := (x1 + x2) / (n1 + n2)
	z := (x1/n1 - x2/n2) / math.Sqrt(pooled*(1-pooled)*(1/n1+1/n2))
	return math.Erfc(math.Abs(z) / math.Sqrt2)
}

// experiment_results on a fixture whose numbers are worked out here: 50 customers on control (45 emailed, 10
// clicked, 5 converted), 50 on short (48, 20, 15), plus customers who must not count.
func TestExperimentResultsComputedByHand(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	b.exec(t, `SELECT tollgate.define_variant('f', 'control', 50)`)
	b.exec(t, `SELECT tollgate.define_variant('f', 'short', 50, 'short message')`)
	b.exec(t, `SELECT tollgate.define_variant('f', 'idle', 0)`)
	b.exec(t, `
		-- customer i of variant v: a limit event 10 days ago (and a second, later, for the odd ones: one customer each)
		INSERT INTO tollgate.events (kind, customer, feature, plan, used, quota, threshold, period_start, created_at, variant)
		SELECT 'limit_reached', v || '_' || i, 'f', 'free', 10, 10, 100, now() - interval '40 days' + k * interval '1 day',
		       now() - interval '10 days' + k * interval '1 hour', v
		  FROM (VALUES ('control'), ('short')) s(v), generate_series(1, 50) i, generate_series(0, CASE WHEN i % 2 = 1 THEN 1 ELSE 0 END) k;
		-- emails: control's first 45, short's first 48 (of their first event)
		INSERT INTO tollgate.emails (event_id, customer, feature, period_start, template, status, sent_at, variant)
		SELECT e.id, e.customer, 'f', e.period_start, 'upgrade_prompt', 'sent', e.created_at + interval '1 minute', e.variant
		  FROM tollgate.events e
		 WHERE e.created_at = (SELECT min(x.created_at) FROM tollgate.events x WHERE x.customer = e.customer)
		   AND split_part(e.customer, '_', 2)::int <= CASE e.variant WHEN 'control' THEN 45 ELSE 48 END;
		-- clicks: control's first 10, short's first 20
		INSERT INTO tollgate.link_clicks (token, minute, customer, feature, variant, clicked_at)
		SELECT md5(e.customer), now(), e.customer, 'f', e.variant, now() - interval '9 days'
		  FROM (SELECT DISTINCT customer, variant FROM tollgate.events) e
		 WHERE split_part(e.customer, '_', 2)::int <= CASE e.variant WHEN 'control' THEN 10 ELSE 20 END;
		-- conversions: control's first 5, short's first 15, 5 days ago
		INSERT INTO tollgate.plan_changes (customer, from_plan, to_plan, kind, changed_at)
		SELECT DISTINCT e.customer, 'free', 'pro', 'conversion', now() - interval '5 days'
		  FROM tollgate.events e
		 WHERE split_part(e.customer, '_', 2)::int <= CASE e.variant WHEN 'control' THEN 5 ELSE 15 END;
		-- who must not count: an event without a variant, a paying customer's event, one out of the range, a
		-- conversion before the customer's first event (so control_50 converted before: not counted)
		INSERT INTO tollgate.events (kind, customer, feature, plan, used, quota, threshold, period_start, created_at, variant)
		VALUES ('limit_reached', 'novariant', 'f', 'free', 10, 10, 100, now() - interval '3 days', now() - interval '3 days', NULL),
		       ('limit_reached', 'payer', 'f', 'pro', 10, 10, 100, now() - interval '3 days', now() - interval '3 days', 'short'),
		       ('limit_reached', 'old', 'f', 'free', 10, 10, 100, now() - interval '90 days', now() - interval '90 days', 'short'),
		       ('threshold', 'threshold_only', 'f', 'free', 8, 10, 80, now() - interval '3 days', now() - interval '3 days', NULL);
		INSERT INTO tollgate.plan_changes (customer, from_plan, to_plan, kind, changed_at)
		VALUES ('control_50', 'free', 'pro', 'conversion', now() - interval '20 days')`)

	since, until := time.Now().AddDate(0, 0, -30), time.Now()
	got := experimentResults(t, b.owner, "f", since, until)
	require.Len(t, got, 3)
	require.Equal(t, []string{"control", "idle", "short"}, []string{got[0].Variant, got[1].Variant, got[2].Variant})
	ctl, idle, short := got[0], got[1], got[2]
	require.Equal(t, [4]int64{50, 45, 10, 5}, [4]int64{ctl.HitLimit, ctl.Prompted, ctl.Clicked, ctl.Converted})
	require.Equal(t, [4]int64{50, 48, 20, 15}, [4]int64{short.HitLimit, short.Prompted, short.Clicked, short.Converted})
	require.Equal(t, [4]int64{0, 0, 0, 0}, [4]int64{idle.HitLimit, idle.Prompted, idle.Clicked, idle.Converted})
	require.EqualValues(t, 50, *ctl.Weight)
	require.EqualValues(t, 0, *idle.Weight)
	require.Nil(t, idle.Rate)
	require.Nil(t, idle.P)

	// by hand: 5/50 = 10%, 15/50 = 30%; Wilson 5/50 = [0.04348, 0.21360]; pooled 20/100 = 0.2, se
	// sqrt(0.2 * 0.8 * (1/50 + 1/50)) = 0.08, z = 0.2 / 0.08 = 2.5, p = erfc(2.5 / sqrt 2) = 0.01242
	require.InDelta(t, 0.10, *ctl.Rate, 1e-12)
	require.InDelta(t, 0.30, *short.Rate, 1e-12)
	require.InDelta(t, 0.04348, *ctl.Low, 1e-5)
	require.InDelta(t, 0.21360, *ctl.High, 1e-5)
	require.InDelta(t, 0.20, *short.Difference, 1e-12)
	require.InDelta(t, 0.01242, *short.P, 1e-5)
	require.Nil(t, ctl.Difference, "control is not compared with itself")
	require.Nil(t, ctl.P)
	// and to the last digit of the formulas
	for _, r := range []experimentRow{ctl, short} {
		low, high := wilson(float64(r.Converted), float64(r.HitLimit))
		require.InDelta(t, low, *r.Low, 1e-12, r.Variant)
		require.InDelta(t, high, *r.High, 1e-12, r.Variant)
	}
	require.InDelta(t, twoProportionP(15, 50, 5, 50), *short.P, 1e-7*twoProportionP(15, 50, 5, 50))

	// the timeline: every customer hit in the range's first days, converted 5 days ago
	rows, err := b.owner.Query(context.Background(), `SELECT variant, bucket, hit_limit, converted
		FROM tollgate.experiment_timeline('f', $1, $2, interval '1 day') ORDER BY 1, 2`, since, until)
	require.NoError(t, err)
	sums := map[string][2]int64{}
	for rows.Next() {
		var v string
		var at time.Time
		var hit, conv int64
		require.NoError(t, rows.Scan(&v, &at, &hit, &conv))
		require.False(t, at.Before(since), "a bucket before since")
		require.True(t, at.Before(until))
		s := sums[v]
		sums[v] = [2]int64{s[0] + hit, s[1] + conv}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string][2]int64{"control": {50, 5}, "short": {50, 15}}, sums)

	// the sidecar's role may read it; the app's may not
	_, err = b.db.Conn(t, b.db.SidecarURL).Exec(context.Background(), `SELECT * FROM tollgate.experiment_results('f', now() - interval '1 day', now())`)
	require.NoError(t, err)
	_, err = b.db.Conn(t, b.db.AppURL).Exec(context.Background(), `SELECT * FROM tollgate.experiment_results('f', now() - interval '1 day', now())`)
	requireCode(t, err, "42501")
	_, err = b.owner.Exec(context.Background(), `SELECT * FROM tollgate.experiment_timeline('f', now() - interval '5 years', now(), interval '1 hour')`)
	requireCode(t, err, "TG422")
}

// erfc in SQL (PostgreSQL 15 has no erf) against Go's math.Erfc: relative error below 1.2e-7.
func TestErfcAgainstGo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, x := range []float64{-3, -1.5, -0.3, 0, 0.1, 0.5, 1, 1.7677669529663687, 2.5, 3.5, 5, 8} {
		var got float64
		require.NoError(t, b.owner.QueryRow(context.Background(), `SELECT tollgate._erfc($1)`, x).Scan(&got))
		want := math.Erfc(x)
		require.InDelta(t, want, got, 1.2e-7*want+1e-300, fmt.Sprint(x))
	}
}
