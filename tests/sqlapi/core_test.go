package sqlapi_test

// The SQL core's promises under contention: one exact row per key for
// limited features, shards for unlimited ones, no subtransactions, no
// deadlocks, each event once.

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// After 32 clients contended on a customer, a transaction with room for two
// calls gets both (the slot design refused the second).
func TestMultiCallTransactionWithRoomIsNeverRefusedAfterContention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "h", "30d", "hard", []int32{100}, ptr[int64](100000))
	var s consumer
	race(t, b.appPool(t, 32), 32, 200, s.consume("d", "h"))
	require.EqualValues(t, 6400, s.allowed.Load())

	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	require.True(t, call(t, tx, "consume", "d", "h", 1).Allowed)
	v := call(t, tx, "consume", "d", "h", 60000)
	require.True(t, v.Allowed, show(v))
	require.EqualValues(t, 66401, v.Used)
	require.NoError(t, tx.Commit(ctx))
}

// 100 calls in one transaction spend one transaction id: no subtransaction
// on any path (each would take an id of its own). Not parallel: other tests
// of this package would take ids meanwhile.
func TestHundredCallsInATransactionSpendNoSubtransactionIDs(t *testing.T) {
	b := setup(t)
	b.feature(t, "h", "30d", "hard", []int32{10, 50, 100}, ptr[int64](60))
	b.feature(t, "u", "30d", "hard", []int32{100}, nil)
	b.feature(t, "r", "rolling 7d", "soft", []int32{50}, ptr[int64](30))
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	xid := func() int64 {
		var x int64
		require.NoError(t, app.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&x))
		return x
	}
	// warm the keys up (first calls create rows), then measure
	call(t, app, "consume", "d", "h", 1)
	call(t, app, "consume", "d", "u", 1)
	before := xid()
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	for i := range 100 {
		// crossings, blocked calls, shards, rolling buckets and refunds
		call(t, tx, "consume", "d", "h", 1)
		call(t, tx, "consume", "d", "u", 1)
		call(t, tx, "consume", "d", "r", 1)
		if i%10 == 0 {
			call(t, tx, "refund", "d", "h", 1)
			call(t, tx, "check", "d", "h", 1)
		}
	}
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, before+2, xid(), "one id for the transaction, one for this read")
}

// A soft limit's threshold, crossed inside two-call transactions while 16
// clients contend, is written exactly once, at the exact usage.
func TestSoftThresholdInMultiCallTransactionsUnderContentionOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "s", "30d", "soft", []int32{50, 100}, ptr[int64](1000))
	race(t, b.appPool(t, 16), 16, 50, func(ctx context.Context, c *pgxpool.Conn, _, _ int) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if _, err := tryCall(ctx, tx, "consume", "d", "s", 1); err != nil {
				return err
			}
			_, err := tryCall(ctx, tx, "consume", "d", "s", 1)
			return err
		})
	})
	require.EqualValues(t, 1600, call(t, b.owner, "check", "d", "s", 1).Used)
	require.EqualValues(t, 1, events(t, b, "d", "limit_reached"))
	require.EqualValues(t, 1001, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'limit_reached'`))
	require.EqualValues(t, 2, events(t, b, "d", "threshold"))
	require.EqualValues(t, 500, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = 50`))
}

// mixed runs consume, rolled-back consume, refund and two-call transactions
// on one key from 32 connections and returns what committed (consumed minus
// refunded); the key starts at base units so a refund always has some.
func mixed(t *testing.T, b *bundle, customer, feature string, base int64) int64 {
	t.Helper()
	call(t, b.owner, "consume", customer, feature, base)
	var net atomic.Int64
	race(t, b.appPool(t, 32), 32, 60, func(ctx context.Context, c *pgxpool.Conn, client, iter int) error {
		consume := func(q querier, n int64) error {
			v, err := tryCall(ctx, q, "consume", customer, feature, n)
			if err == nil && !v.Allowed {
				t.Errorf("consume refused with room: %s", show(v))
			}
			return err
		}
		refund := func(q querier) error { _, err := tryCall(ctx, q, "refund", customer, feature, 1); return err }
		switch rand.IntN(5) {
		case 0:
			if err := consume(c, 1); err != nil {
				return err
			}
			net.Add(1)
		case 1: // rolled back: counts nothing
			tx, err := c.Begin(ctx)
			if err != nil {
				return err
			}
			if err := consume(tx, 1); err != nil {
				return err
			}
			return tx.Rollback(ctx)
		case 2:
			if err := refund(c); err != nil {
				return err
			}
			net.Add(-1)
		case 3:
			if err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				if err := consume(tx, 1); err != nil {
					return err
				}
				return consume(tx, 2)
			}); err != nil {
				return err
			}
			net.Add(3)
		case 4:
			if err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				if err := refund(tx); err != nil {
					return err
				}
				return consume(tx, 1)
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return base + net.Load()
}

// 32 connections mixing consume, rollback, refund and two-call transactions
// on one customer: no deadlock (race fails on any error, 40P01 included), and
// the count is exactly what committed, on a limited feature (one row) and on
// an unlimited one (shards).
func TestMixedWorkloadOnOneCustomerIsExactWithoutDeadlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		quota *int64
	}{{"limited", ptr[int64](1_000_000_000)}, {"unlimited", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.feature(t, "m", "30d", "hard", []int32{1, 2, 3}, tc.quota)
			want := mixed(t, b, "d", "m", 10000)
			require.Equal(t, want, call(t, b.owner, "check", "d", "m", 1).Used)
			var usage []verdict
			rows, err := b.owner.Query(context.Background(), `SELECT `+verdictCols+` FROM tollgate.usage('d')`)
			require.NoError(t, err)
			for rows.Next() {
				usage = append(usage, scanVerdict(t, rows))
			}
			require.NoError(t, rows.Err())
			require.Len(t, usage, 1)
			require.Equal(t, want, usage[0].Used)
			if tc.quota == nil {
				require.Positive(t, b.count(t, `SELECT count(*) FROM tollgate.usage_shards WHERE customer = 'd'`),
					"an unlimited feature's hot calls count on shards")
			} else {
				require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.usage_shards`))
			}
		})
	}
}

// An unlimited feature counts on shards, rolls back with the caller, and
// when the customer's plan limits the feature mid-window (a downgrade) the
// shards are folded into the one row that the limit is then decided on.
func TestShardsFoldIntoTheRowWhenAFeatureBecomesLimited(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "u", "30d", "hard", []int32{50, 100}, ptr[int64](100))
	b.exec(t, `SELECT tollgate.set_customer('d', NULL, 'cus_D')`)
	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
	           VALUES ('sub_d', 'cus_D', 'active', '{price_pro}')`)
	var s consumer
	race(t, b.appPool(t, 16), 16, 5, s.consume("d", "u"))
	require.EqualValues(t, 80, s.allowed.Load())
	ctx := context.Background()
	tx, err := b.owner.Begin(ctx)
	require.NoError(t, err)
	call(t, tx, "consume", "d", "u", 7)
	require.NoError(t, tx.Rollback(ctx))
	v := call(t, b.owner, "check", "d", "u", 1)
	require.Equal(t, "pro", v.Plan)
	require.EqualValues(t, 80, v.Used)
	require.Nil(t, v.Quota)

	// the subscription ends: free, 100 a month; the next call folds the shards
	b.exec(t, `UPDATE tollgate.subscriptions SET status = 'canceled' WHERE stripe_subscription = 'sub_d'`)
	v = call(t, b.owner, "consume", "d", "u", 15)
	require.True(t, v.Allowed)
	require.Equal(t, "free", v.Plan)
	require.EqualValues(t, 95, v.Used)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.usage_shards`))
	require.EqualValues(t, 95, b.count(t, `SELECT used FROM tollgate.usage WHERE customer = 'd'`))
	allowed, _ := hammer(t, b, 16, 5, "d", "u")
	require.EqualValues(t, 5, allowed, "exactly the 5 left under the new quota")
	require.EqualValues(t, 1, events(t, b, "d", "limit_reached"))
}

// A closed window of an unlimited feature keeps the units on its shards;
// refunds never take a window's usage below 0.
func TestShardsOfAClosedWindowAndRefundsOfUnlimitedFeatures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "u", "month", "hard", []int32{100}, nil)
	jan := time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)
	for range 5 {
		at(t, b.owner, "consume", "d", "u", 2, jan) // the first by the full path, the rest on a shard
	}
	require.Positive(t, b.count(t, `SELECT count(*) FROM tollgate.usage_shards`))
	v := at(t, b.owner, "refund", "d", "u", 3, jan)
	require.EqualValues(t, 7, v.Used)
	v = at(t, b.owner, "refund", "d", "u", 100, jan)
	require.EqualValues(t, 0, v.Used, "never below 0")
	for range 3 {
		at(t, b.owner, "consume", "d", "u", 1, jan)
	}
	feb := jan.AddDate(0, 1, 0)
	require.EqualValues(t, 1, at(t, b.owner, "consume", "d", "u", 1, feb).Used)
	require.EqualValues(t, 3, at(t, b.owner, "check", "d", "u", 1, jan).Used, "January: its history and its shards")
	require.EqualValues(t, 1, at(t, b.owner, "check", "d", "u", 1, feb).Used)
}
