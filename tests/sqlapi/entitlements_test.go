package sqlapi_test

// Entitlements beyond the plan: overrides, grants (top-up packs among them),
// idempotent consume, and who may change them.

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// granted reads the verdict's granted field of check.
func granted(t *testing.T, q querier, customer, feature string) *int64 {
	t.Helper()
	var g *int64
	require.NoError(t, q.QueryRow(context.Background(), `SELECT granted FROM tollgate.check($1, $2)`, customer, feature).Scan(&g))
	return g
}

func TestOverrideRaisesAndLowersTheQuotaMidWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{50, 100}, ptr[int64](10))
	admin := b.db.Conn(t, b.db.AdminURL)
	ctx := context.Background()
	require.True(t, call(t, b.owner, "consume", "c", "f", 10).Allowed)
	require.False(t, call(t, b.owner, "consume", "c", "f", 1).Allowed)

	// raised: unblocks at once, and the verdict, usage() and events use it
	_, err := admin.Exec(ctx, `SELECT tollgate.set_override('c', 'f', 20, NULL, 'stuck on a demo')`)
	require.NoError(t, err)
	v := call(t, b.owner, "consume", "c", "f", 5)
	require.True(t, v.Allowed)
	require.EqualValues(t, 20, *v.Quota)
	require.EqualValues(t, 5, *v.Remaining)
	require.True(t, call(t, b.owner, "consume", "c", "f", 5).Allowed)
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'threshold' AND threshold = 100`),
		"each threshold fires once per window, whatever the quota")
	require.EqualValues(t, 20, b.count(t, `SELECT quota FROM tollgate.usage('c')`))

	// lowered below the usage: blocks from the next call
	_, err = admin.Exec(ctx, `SELECT tollgate.set_override('c', 'f', 12)`)
	require.NoError(t, err)
	v = call(t, b.owner, "consume", "c", "f", 1)
	require.False(t, v.Allowed)
	require.EqualValues(t, 20, v.Used)
	require.EqualValues(t, 12, *v.Quota)

	// unlimited, then cleared: the plan again
	_, err = admin.Exec(ctx, `SELECT tollgate.set_override('c', 'f', NULL)`)
	require.NoError(t, err)
	v = call(t, b.owner, "consume", "c", "f", 100)
	require.True(t, v.Allowed)
	require.Nil(t, v.Quota)
	var cleared bool
	require.NoError(t, admin.QueryRow(ctx, `SELECT tollgate.clear_override('c', 'f')`).Scan(&cleared))
	require.True(t, cleared)
	v = call(t, b.owner, "check", "c", "f", 1)
	require.False(t, v.Allowed)
	require.EqualValues(t, 120, v.Used)
	require.EqualValues(t, 10, *v.Quota)
	require.NoError(t, admin.QueryRow(ctx, `SELECT tollgate.clear_override('c', 'f')`).Scan(&cleared))
	require.False(t, cleared)
}

func TestOverrideEndsExactlyAtUntil(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "lifetime", "hard", []int32{100}, ptr[int64](2))
	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	b.exec(t, `SELECT tollgate.set_override('c', 'f', 5, $1)`, until)
	require.True(t, at(t, b.owner, "consume", "c", "f", 4, until.Add(-time.Hour)).Allowed)
	require.True(t, at(t, b.owner, "check", "c", "f", 1, until.Add(-time.Second)).Allowed)
	v := at(t, b.owner, "consume", "c", "f", 1, until)
	require.False(t, v.Allowed, "at until the plan's quota applies again")
	require.EqualValues(t, 2, *v.Quota)
}

func TestGrantsAreSpentAfterTheQuotaAcrossWindowsUntilTheyExpire(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	jan := time.Date(2030, 1, 5, 0, 0, 0, 0, time.UTC)
	expires := time.Date(2030, 3, 15, 0, 0, 0, 0, time.UTC)
	var id int64
	require.NoError(t, b.owner.QueryRow(context.Background(),
		`SELECT tollgate.grant('c', 'f', 15, $1, 'goodwill')`, expires).Scan(&id))

	// January: the quota, then 8 of the grant
	require.True(t, at(t, b.owner, "consume", "c", "f", 10, jan).Allowed)
	v := at(t, b.owner, "consume", "c", "f", 8, jan)
	require.True(t, v.Allowed)
	require.EqualValues(t, 18, v.Used)
	require.EqualValues(t, 0, *v.Remaining, "remaining is the quota's")
	require.EqualValues(t, 8, b.count(t, `SELECT spent FROM tollgate.grants WHERE id = $1`, id))
	// a refund gives units past the quota back to the grant
	v = at(t, b.owner, "refund", "c", "f", 3, jan)
	require.EqualValues(t, 15, v.Used)
	require.EqualValues(t, 5, b.count(t, `SELECT spent FROM tollgate.grants WHERE id = $1`, id))

	// February: a new window's quota first; the grant's 10 left after it
	feb := jan.AddDate(0, 1, 0)
	require.True(t, at(t, b.owner, "consume", "c", "f", 10, feb).Allowed)
	require.True(t, at(t, b.owner, "consume", "c", "f", 9, feb).Allowed)
	v = at(t, b.owner, "consume", "c", "f", 2, feb)
	require.False(t, v.Allowed, "10 + 10 granted left: 19 used, 2 more do not fit")
	require.True(t, at(t, b.owner, "consume", "c", "f", 1, feb).Allowed)
	require.False(t, at(t, b.owner, "consume", "c", "f", 1, feb).Allowed)
	require.EqualValues(t, 15, b.count(t, `SELECT spent FROM tollgate.grants WHERE id = $1`, id))

	// March: a second grant; the first expires mid-window, exactly at expires_at
	b.exec(t, `SELECT tollgate.grant('c', 'f', 1, NULL)`)
	mar := jan.AddDate(0, 2, 0)
	require.True(t, at(t, b.owner, "consume", "c", "f", 10, mar).Allowed)
	require.True(t, at(t, b.owner, "check", "c", "f", 1, expires.Add(-time.Second)).Allowed)
	require.True(t, at(t, b.owner, "consume", "c", "f", 1, expires).Allowed, "the grant without expiry")
	v = at(t, b.owner, "consume", "c", "f", 1, expires)
	require.False(t, v.Allowed)
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached' AND period_start = $1`,
		time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)))
}

func TestGrantsAreExactUnder32Connections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "30d", "hard", []int32{50, 100}, ptr[int64](100))
	b.exec(t, `SELECT tollgate.grant('c', 'f', 70, now() + interval '1 day')`)
	b.exec(t, `SELECT tollgate.grant('c', 'f', 30)`)
	allowed, _ := hammer(t, b, 32, 20, "c", "f")
	require.EqualValues(t, 200, allowed, "the plan's 100 and the 100 granted, not one more")
	require.EqualValues(t, 100, b.count(t, `SELECT sum(spent) FROM tollgate.grants WHERE customer = 'c'`))
	require.EqualValues(t, 0, *granted(t, b.owner, "c", "f"))
	require.EqualValues(t, 1, events(t, b, "c", "limit_reached"))
}

func TestIdempotentConsume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](100))
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	keyed := func(q querier, key string, amount int64) (verdict, error) {
		var v verdict
		err := q.QueryRow(ctx, `SELECT `+verdictCols+` FROM tollgate.consume('c', 'f', $1, $2)`, amount, key).
			Scan(&v.Allowed, &v.Customer, &v.Feature, &v.Plan, &v.Used, &v.Quota, &v.Remaining, &v.ResetsAt, &v.Message)
		return v, err
	}
	first, err := keyed(app, "k1", 7)
	require.NoError(t, err)
	again, err := keyed(app, "k1", 7)
	require.NoError(t, err)
	require.Equal(t, first, again, "the first call's verdict")
	require.EqualValues(t, 7, call(t, app, "check", "c", "f", 1).Used)
	_, err = keyed(app, "k1", 8)
	requireCode(t, err, "TG422")

	// rolled back: the retry counts
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	_, err = keyed(tx, "k2", 5)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	v, err := keyed(app, "k2", 5)
	require.NoError(t, err)
	require.EqualValues(t, 12, v.Used)

	// concurrent with itself: the second waits for the first, then answers its verdict
	pool := b.appPool(t, 2)
	c1, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer c1.Release()
	tx1, err := c1.Begin(ctx)
	require.NoError(t, err)
	v1, err := keyed(tx1, "k3", 3)
	require.NoError(t, err)
	done := make(chan verdict)
	go func() {
		v2, err := keyed(pool, "k3", 3)
		if err != nil {
			t.Error(err)
		}
		done <- v2
	}()
	waitForLockWait(t, b, "idempotency_keys")
	require.NoError(t, tx1.Commit(ctx))
	require.Equal(t, v1, <-done)
	require.EqualValues(t, 15, call(t, app, "check", "c", "f", 1).Used)

	// and when the first rolls back while the second waits, the second counts
	tx1, err = c1.Begin(ctx)
	require.NoError(t, err)
	_, err = keyed(tx1, "k4", 4)
	require.NoError(t, err)
	go func() {
		v2, err := keyed(pool, "k4", 4)
		if err != nil {
			t.Error(err)
		}
		done <- v2
	}()
	waitForLockWait(t, b, "idempotency_keys")
	require.NoError(t, tx1.Rollback(ctx))
	require.EqualValues(t, 19, (<-done).Used)

	// many at once with one key: counted once
	var wg sync.WaitGroup
	many := b.appPool(t, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := keyed(many, "k5", 1); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 20, call(t, app, "check", "c", "f", 1).Used)

	// keys are kept at least 24 hours
	var pruned int64
	sidecar := b.db.Conn(t, b.db.SidecarURL)
	require.NoError(t, sidecar.QueryRow(ctx, `SELECT tollgate.prune_idempotency_keys()`).Scan(&pruned))
	require.Zero(t, pruned)
	_, err = sidecar.Exec(ctx, `SELECT tollgate.prune_idempotency_keys('1 hour')`)
	requireCode(t, err, "TG422")
	b.exec(t, `UPDATE tollgate.idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'k1'`)
	require.NoError(t, sidecar.QueryRow(ctx, `SELECT tollgate.prune_idempotency_keys()`).Scan(&pruned))
	require.EqualValues(t, 1, pruned)
}

// waitForLockWait waits until some session waits for a lock while running a
// statement that mentions what.
func waitForLockWait(t *testing.T, b *bundle, what string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM pg_stat_activity
		                    WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%' || $1 || '%'`,
			what) > 0 || b.count(t, `SELECT count(*) FROM pg_stat_activity
		                    WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0
	}, 30*time.Second, 5*time.Millisecond)
}

func TestTopUpsGrantOncePerStripeObject(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	b.exec(t, `SELECT tollgate.define_topup('calls_500', 'price_calls500', 'f', 500, '365 days')`)
	sidecar := b.db.Conn(t, b.db.SidecarURL)
	ctx := context.Background()
	for range 5 {
		var n int64
		require.NoError(t, sidecar.QueryRow(ctx,
			`SELECT tollgate.record_topup('cs_test_1', 'c', '{price_calls500,price_other}', '{2,1}')`).Scan(&n))
		require.EqualValues(t, 1, n)
	}
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.grants WHERE customer = 'c'`))
	require.EqualValues(t, 1000, *granted(t, b.owner, "c", "f"))
	require.EqualValues(t, 1, b.count(t,
		`SELECT count(*) FROM tollgate.grants WHERE expires_at BETWEEN now() + interval '364 days' AND now() + interval '366 days'`))
}

func TestOnlySupportToolsChangeEntitlements(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	ctx := context.Background()
	for _, url := range []string{b.db.AppURL, b.db.SidecarURL} {
		conn := b.db.Conn(t, url)
		for _, stmt := range []string{
			`SELECT tollgate.set_override('c', 'f', NULL)`,
			`SELECT tollgate.clear_override('c', 'f')`,
			`SELECT tollgate.grant('c', 'f', 1000)`,
			`SELECT tollgate.customer_summary('c')`,
			`SELECT tollgate.define_topup('t', 'price_x', 'f', 1)`,
			`SELECT * FROM tollgate.overrides`,
			`SELECT * FROM tollgate.grants`,
			`INSERT INTO tollgate.grants (customer, feature, amount) VALUES ('c', 'f', 1)`,
		} {
			_, err := conn.Exec(ctx, stmt)
			requireCode(t, err, "42501")
		}
	}
	app := b.db.Conn(t, b.db.AppURL)
	_, err := app.Exec(ctx, `SELECT tollgate.record_topup('cs_1', 'c', '{price_x}', '{1}')`)
	requireCode(t, err, "42501")
	admin := b.db.Conn(t, b.db.AdminURL)
	for _, stmt := range []string{
		`SELECT tollgate.consume('c', 'f')`,
		`SELECT tollgate.record_topup('cs_1', 'c', '{price_x}', '{1}')`,
		`SELECT tollgate.define_topup('t', 'price_x', 'f', 1)`,
		`SELECT * FROM tollgate.grants`,
	} {
		_, err := admin.Exec(ctx, stmt)
		requireCode(t, err, "42501")
	}
}

func TestCustomerSummary(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{50, 100}, ptr[int64](10))
	b.feature(t, "g", "month", "hard", []int32{100}, nil)
	b.exec(t, `SELECT tollgate.set_customer('c', 'c@example.test', 'cus_C')`)
	b.exec(t, `SELECT tollgate.grant('c', 'f', 5, NULL, 'sorry')`)
	b.exec(t, `SELECT tollgate.set_override('c', 'g', 3, now() + interval '7 days', 'trial')`)
	call(t, b.owner, "consume", "c", "f", 12)
	admin := b.db.Conn(t, b.db.AdminURL)
	var raw []byte
	require.NoError(t, admin.QueryRow(context.Background(), `SELECT tollgate.customer_summary('c')`).Scan(&raw))
	var s struct {
		Customer string `json:"customer"`
		Email    string `json:"email"`
		Plan     string `json:"plan"`
		Features []struct {
			Feature  string `json:"feature"`
			Used     int64  `json:"used"`
			Quota    *int64 `json:"quota"`
			Granted  *int64 `json:"granted"`
			Override *struct {
				Quota  *int64 `json:"quota"`
				Reason string `json:"reason"`
			} `json:"override"`
			Grants []struct {
				Amount int64  `json:"amount"`
				Spent  int64  `json:"spent"`
				Reason string `json:"reason"`
			} `json:"grants"`
		} `json:"features"`
		Events []struct {
			Kind      string `json:"kind"`
			Threshold int    `json:"threshold"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(raw, &s), string(raw))
	require.Equal(t, "c", s.Customer)
	require.Equal(t, "c@example.test", s.Email)
	require.Equal(t, "free", s.Plan)
	require.Len(t, s.Features, 2)
	f, g := s.Features[0], s.Features[1]
	require.Equal(t, "f", f.Feature)
	require.EqualValues(t, 12, f.Used)
	require.EqualValues(t, 3, *f.Granted)
	require.Len(t, f.Grants, 1)
	require.EqualValues(t, 2, f.Grants[0].Spent)
	require.Equal(t, "sorry", f.Grants[0].Reason)
	require.Nil(t, f.Override)
	require.EqualValues(t, 3, *g.Quota)
	require.Equal(t, "trial", g.Override.Reason)
	require.Len(t, s.Events, 2)
}

var _ = pgx.Identifier{}
var _ *pgxpool.Pool
