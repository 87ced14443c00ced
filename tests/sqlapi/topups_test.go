package sqlapi_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// recordStripeTopup calls tollgate.record_stripe_topup as the sidecar: the customer it went to ("" = nobody yet),
// the packs its prices matched and the packs granted by this call.
func recordStripeTopup(t *testing.T, q querier, object string, stripeCustomer, meta, ref *string, prices []string, quantities []int64) (string, int, int) {
	t.Helper()
	var customer *string
	var matched, granted int
	require.NoError(t, q.QueryRow(context.Background(),
		`SELECT customer, matched, granted FROM tollgate.record_stripe_topup($1, $2, $3, $4, $5, $6)`,
		object, stripeCustomer, meta, ref, prices, quantities).Scan(&customer, &matched, &granted))
	if customer == nil {
		return "", matched, granted
	}
	return *customer, matched, granted
}

func s(v string) *string { return &v }

// A purchase is mapped as subscriptions are, recorded once per object, and granted once however often it comes.
func TestStripeTopupsMapAndGrantOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	b.exec(t, `SELECT tollgate.define_topup('calls_500', 'price_calls500', 'f', 500, '365 days')`)
	b.exec(t, `SELECT tollgate.define_topup('calls_50', 'price_calls50', 'f', 50)`)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	sidecar := b.db.Conn(t, b.db.SidecarURL)

	var prices []string
	require.NoError(t, sidecar.QueryRow(context.Background(), `SELECT tollgate.topup_prices()`).Scan(&prices))
	require.Equal(t, []string{"price_calls50", "price_calls500"}, prices)

	// the app's link wins over the session's client_reference_id
	for i := range 5 {
		c, matched, granted := recordStripeTopup(t, sidecar, "in_1", s("cus_alice"), nil, s("someone_else"),
			[]string{"price_calls500", "price_calls50", "price_other"}, []int64{2, 1, 3})
		require.Equal(t, "alice", c)
		require.Equal(t, 2, matched)
		require.Equal(t, map[bool]int{true: 2, false: 0}[i == 0], granted, "delivery %d", i)
	}
	require.EqualValues(t, 1050, *granted(t, b.owner, "alice", "f"))

	// no Stripe customer (payment mode without one): the client_reference_id
	c, _, n := recordStripeTopup(t, sidecar, "cs_test_2", nil, nil, s("bob"), []string{"price_calls50"}, []int64{1})
	require.Equal(t, "bob", c)
	require.Equal(t, 1, n)
	require.EqualValues(t, 50, *granted(t, b.owner, "bob", "f"))

	// metadata.tollgate_customer of a Stripe customer nobody linked: recorded as the link, and granted
	c, _, n = recordStripeTopup(t, sidecar, "in_3", s("cus_carol"), s("carol"), nil, []string{"price_calls50"}, []int64{1})
	require.Equal(t, "carol", c)
	require.Equal(t, 1, n)
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.stripe_links WHERE stripe_customer = 'cus_carol' AND customer = 'carol' AND source = 'metadata'`))

	// no pack among the prices: nothing recorded
	c, matched, n := recordStripeTopup(t, sidecar, "in_4", s("cus_alice"), nil, nil, []string{"price_pro"}, []int64{1})
	require.Equal(t, []any{"", 0, 0}, []any{c, matched, n})
	require.EqualValues(t, 0, b.count(t, `SELECT count(*) FROM tollgate.topup_purchases WHERE stripe_object = 'in_4'`))
}

// A purchase whose Stripe customer belongs to nobody waits, and is granted in the transaction that links it:
// by the app (set_customer), by metadata seen in a later sync, or by a completed Checkout Session.
func TestStripeTopupsWaitForTheirOwner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	b.exec(t, `SELECT tollgate.define_topup('calls_50', 'price_calls50', 'f', 50)`)
	sidecar := b.db.Conn(t, b.db.SidecarURL)
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()

	for _, obj := range []string{"in_a1", "in_a2", "in_b", "in_c"} {
		owner := map[string]string{"in_a1": "cus_a", "in_a2": "cus_a", "in_b": "cus_b", "in_c": "cus_c"}[obj]
		c, matched, n := recordStripeTopup(t, sidecar, obj, s(owner), nil, nil, []string{"price_calls50"}, []int64{1})
		require.Equal(t, []any{"", 1, 0}, []any{c, matched, n}, obj)
	}
	require.EqualValues(t, 4, b.count(t, `SELECT count(*) FROM tollgate.topup_purchases WHERE granted_at IS NULL AND customer IS NULL`))

	// the app links cus_a: both of its purchases are granted, in that call
	_, err := app.Exec(ctx, `SELECT tollgate.set_customer('alice', NULL, 'cus_a')`)
	require.NoError(t, err)
	require.EqualValues(t, 100, *granted(t, b.owner, "alice", "f"))
	// a redelivery of a granted purchase grants nothing more, and says whose it was
	c, _, n := recordStripeTopup(t, sidecar, "in_a1", s("cus_a"), nil, nil, []string{"price_calls50"}, []int64{1})
	require.Equal(t, []any{"alice", 0}, []any{c, n})

	// metadata seen by a later sync links cus_b
	_, err = sidecar.Exec(ctx, `SELECT tollgate.sync_subscription('sub_b', 'cus_b', 'canceled', '{}', '{}', NULL, NULL,
		false, NULL, now(), 'bob')`)
	require.NoError(t, err)
	require.EqualValues(t, 50, *granted(t, b.owner, "bob", "f"))

	// a completed Checkout Session links cus_c
	_, err = sidecar.Exec(ctx, `SELECT tollgate.link_checkout_session('cs_test_c', 'cus_c', 'carol')`)
	require.NoError(t, err)
	require.EqualValues(t, 50, *granted(t, b.owner, "carol", "f"))
	require.EqualValues(t, 0, b.count(t, `SELECT count(*) FROM tollgate.topup_purchases WHERE granted_at IS NULL`))
	require.EqualValues(t, 4, b.count(t, `SELECT count(*) FROM tollgate.grants`))
}

// The app may not record purchases; bad arguments are TG422 (badinput_test covers every argument).
func TestStripeTopupsAreTheSidecars(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	b.exec(t, `SELECT tollgate.define_topup('calls_50', 'price_calls50', 'f', 50)`)
	ctx := context.Background()
	for _, url := range []string{b.db.AppURL, b.db.AdminURL} {
		_, err := b.db.Conn(t, url).Exec(ctx, `SELECT * FROM tollgate.record_stripe_topup('in_1', NULL, NULL, 'c', '{price_calls50}', '{1}')`)
		requireCode(t, err, "42501")
	}
	sidecar := b.db.Conn(t, b.db.SidecarURL)
	for _, stmt := range []string{
		`SELECT * FROM tollgate.record_stripe_topup('sub_1', NULL, NULL, 'c', '{price_calls50}', '{1}')`,
		`SELECT * FROM tollgate.record_stripe_topup('in_1', 'acct_1', NULL, 'c', '{price_calls50}', '{1}')`,
		`SELECT * FROM tollgate.record_stripe_topup('in_1', NULL, NULL, 'c', '{price_calls50}', '{1,2}')`,
		`SELECT * FROM tollgate.record_stripe_topup('in_1', NULL, NULL, 'c', '{price_calls50}', '{0}')`,
		`SELECT * FROM tollgate.record_stripe_topup('in_1', NULL, NULL, repeat('c', 256), '{price_calls50}', '{1}')`,
	} {
		_, err := sidecar.Exec(ctx, stmt)
		requireCode(t, err, "TG422")
	}
	require.EqualValues(t, 0, b.count(t, `SELECT count(*) FROM tollgate.topup_purchases`))
}
