package sqlapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A TG402 from require (or a row gate) rolls the call's limit_reached event
// back with the transaction; note_blocked, called after the rollback, records
// it once and counts nothing.
func TestNoteBlockedRecordsTheEventARollbackLost(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "exports", "month", "hard", []int32{100}, ptr[int64](1))
	ctx := context.Background()
	app := b.db.Conn(t, b.db.AppURL)
	call(t, app, "consume", "c", "exports", 1)
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT tollgate.require('c', 'exports')`)
	requireCode(t, err, "TG402")
	require.NoError(t, tx.Rollback(ctx))
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached'`))

	for i := 0; i < 3; i++ {
		v := call(t, app, "note_blocked", "c", "exports", 1)
		require.False(t, v.Allowed)
		require.EqualValues(t, 1, v.Used)
	}
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached'`))
	require.EqualValues(t, 1, b.count(t, `SELECT used FROM tollgate.usage WHERE customer = 'c'`))

	// a call that is not blocked: nothing recorded, nothing counted
	v := call(t, app, "note_blocked", "d", "exports", 1)
	require.True(t, v.Allowed)
	require.EqualValues(t, 0, v.Used)
	require.EqualValues(t, 0, b.count(t, `SELECT coalesce(sum(used), 0) FROM tollgate.usage WHERE customer = 'd'`))
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached'`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.events WHERE customer = 'd'`))
}

// Two syncs of two subscriptions of one customer at once (monthly to yearly:
// the new one created, the old one canceled) must leave the customer on the
// paid plan: each refresh sees the other's committed subscription.
func TestConcurrentSubscriptionSyncsKeepThePaidPlan(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	b.exec(t, `SELECT tollgate.set_customer('c', NULL, 'cus_c')`)
	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
	           VALUES ('sub_a', 'cus_c', 'active', '{price_pro}')`)
	ctx := context.Background()
	cancelA := b.db.Conn(t, b.db.URL)
	createB := b.db.Conn(t, b.db.URL)

	txA, err := cancelA.Begin(ctx)
	require.NoError(t, err)
	_, err = txA.Exec(ctx, `UPDATE tollgate.subscriptions SET status = 'canceled' WHERE stripe_subscription = 'sub_a'`)
	require.NoError(t, err)

	var pid int32
	require.NoError(t, createB.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	done := make(chan error, 1)
	go func() {
		_, err := createB.Exec(ctx, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
		                             VALUES ('sub_b', 'cus_c', 'active', '{price_pro}')`)
		done <- err
	}()
	waitUntilBlocked(t, b, pid)
	require.NoError(t, txA.Commit(ctx))
	require.NoError(t, <-done)

	require.Equal(t, "pro", call(t, b.owner, "check", "c", "f", 1).Plan)
}

// waitUntilBlocked returns once the backend pid waits for a lock.
func waitUntilBlocked(t *testing.T, b *bundle, pid int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, pid) == 0 {
		require.True(t, time.Now().Before(deadline), "backend %d never waited for a lock", pid)
		time.Sleep(5 * time.Millisecond) // polling the server's view of another session, with a deadline
	}
}

// A plan change that commits while a customer's first call of a feature is
// still in its transaction must not leave the old plan in the usage row.
func TestPlanChangeDuringFirstUseIsSeenAfterwards(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.define_feature('seats', 'lifetime')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'seats', 1)`)
	b.exec(t, `SELECT tollgate.set_limit('pro', 'seats', NULL)`)
	b.exec(t, `SELECT tollgate.set_customer('c', NULL, 'cus_c')`)
	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
	           VALUES ('sub_c', 'cus_c', 'active', '{price_pro}')`)
	ctx := context.Background()
	app := b.db.Conn(t, b.db.AppURL)
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	require.Equal(t, "pro", call(t, tx, "consume", "c", "seats", 1).Plan)
	b.exec(t, `UPDATE tollgate.subscriptions SET status = 'canceled'`)
	require.NoError(t, tx.Commit(ctx))

	v := call(t, app, "consume", "c", "seats", 1)
	require.Equal(t, "free", v.Plan)
	require.False(t, v.Allowed, "free allows 1 seat and one is used")
}

// Rolling windows are the same from every session time zone (DST included).
func TestRollingWindowIgnoresSessionTimeZone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "rolling 30d", "hard", []int32{100}, ptr[int64](2))
	at(t, b.owner, "consume", "c", "f", 1, utc("2026-02-18T12:00:00Z"))
	at(t, b.owner, "consume", "c", "f", 1, utc("2026-02-19T12:00:00Z"))
	ctx := context.Background()
	for _, tz := range []string{"UTC", "America/New_York", "Pacific/Kiritimati"} {
		conn := b.db.Conn(t, b.db.URL)
		_, err := conn.Exec(ctx, "SET TimeZone = '"+tz+"'")
		require.NoError(t, err)
		// 30 days after the first call's bucket, less a minute: both calls still count
		v := at(t, conn, "check", "c", "f", 1, utc("2026-03-20T11:59:00Z"))
		require.False(t, v.Allowed, tz)
		require.EqualValues(t, 2, v.Used, tz)
		v = at(t, conn, "check", "c", "f", 1, utc("2026-03-20T12:00:00Z"))
		require.True(t, v.Allowed, tz)
		require.EqualValues(t, 1, v.Used, tz)
	}
}

// A customer hovering at a rolling limit is prompted once per window length,
// not each time an old bucket slides out.
func TestRollingLimitEventsOncePerWindowLength(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "rolling 1d", "hard", []int32{100}, ptr[int64](3))
	start := utc("2026-06-01T00:30:00Z")
	for h := 0; h < 30; h++ {
		for i := 0; i < 2; i++ {
			at(t, b.owner, "consume", "c", "f", 1, start.Add(time.Duration(h)*time.Hour))
		}
	}
	// 30 hours span two one-day slots at most
	require.LessOrEqual(t, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached'`), int64(2))
	require.GreaterOrEqual(t, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached'`), int64(1))
}

// Changing a feature's period starts a window of the new period.
func TestPeriodChangeStartsANewWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](5))
	at(t, b.owner, "consume", "c", "f", 1, utc("2026-03-11T00:00:00Z"))
	b.exec(t, `SELECT tollgate.define_feature('f', 'lifetime')`)
	v := at(t, b.owner, "consume", "c", "f", 1, utc("2026-05-11T00:00:00Z"))
	require.Nil(t, v.ResetsAt)
	require.EqualValues(t, 1, v.Used)
	v = at(t, b.owner, "consume", "c", "f", 1, utc("2026-06-11T00:00:00Z"))
	require.EqualValues(t, 2, v.Used)
	// March's usage is kept as history
	require.EqualValues(t, 1, b.count(t, `SELECT used FROM tollgate.usage_windows WHERE customer = 'c' AND feature = 'f'`))
}

// The app's fast path and a sync that changes the customer's plan take no
// locks on each other's rows: a transaction consuming two features while a
// sync runs does not deadlock.
func TestSyncDuringATwoFeatureTransactionDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "aaa", "month", "hard", []int32{100}, ptr[int64](10))
	b.feature(t, "zzz", "month", "hard", []int32{100}, ptr[int64](10))
	b.exec(t, `SELECT tollgate.set_customer('c', NULL, 'cus_c')`)
	call(t, b.owner, "consume", "c", "aaa", 1)
	call(t, b.owner, "consume", "c", "zzz", 1)
	ctx := context.Background()
	app := b.db.Conn(t, b.db.AppURL)
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	call(t, tx, "consume", "c", "zzz", 1)
	synced := make(chan error, 1)
	go func() {
		_, err := b.owner.Exec(ctx, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
		                              VALUES ('sub_c', 'cus_c', 'active', '{price_pro}')`)
		synced <- err
	}()
	select { // the sync does not wait for the app's rows
	case err := <-synced:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the sync waited for the app's transaction")
	}
	v := call(t, tx, "consume", "c", "aaa", 1)
	require.Equal(t, "pro", v.Plan)
	require.NoError(t, tx.Commit(ctx))
	var plan string
	require.NoError(t, app.QueryRow(ctx, `SELECT plan FROM tollgate.check('c', 'zzz')`).Scan(&plan))
	require.Equal(t, "pro", plan)
}
