package stripesync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync"
)

// syncSQL calls tollgate.sync_subscription as the sidecar with prices, a period and a fetch time.
func syncSQL(t testing.TB, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sub, cus, status string, prices []string, fetchedAt time.Time, meta string) (customer, plan *string, applied bool, err error) {
	t.Helper()
	var m *string
	if meta != "" {
		m = &meta
	}
	err = q.QueryRow(context.Background(), `SELECT customer, plan, applied FROM tollgate.sync_subscription(
		$1, $2, $3, $4, '{}', now() - interval '1 day', now() + interval '29 days', false, now() - interval '1 day', $5, $6)`,
		sub, cus, status, prices, fetchedAt, m).Scan(&customer, &plan, &applied)
	return
}

func TestSidecarRoleReachesOnlyItsFunctions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, tbl := range []string{"subscriptions", "stripe_events", "stripe_links", "sync_runs", "customers", "settings"} {
		_, err := b.sidecar.Exec(ctx, fmt.Sprintf(`SELECT * FROM tollgate.%s`, tbl))
		requireCode(t, err, "42501")
		_, err = b.sidecar.Exec(ctx, fmt.Sprintf(`DELETE FROM tollgate.%s`, tbl))
		requireCode(t, err, "42501")
	}
	for _, stmt := range []string{
		`SELECT tollgate._link_stripe_customer('cus_1', 'c', 'metadata', NULL)`,
		`SELECT tollgate._stripe_owner('cus_1')`,
		`SELECT tollgate.set_setting('past_due_is_grace', 'true')`,
		`SELECT tollgate.define_plan('x')`,
	} {
		_, err := b.sidecar.Exec(ctx, stmt)
		requireCode(t, err, "42501")
	}
	// and the app cannot call the sidecar's functions
	app := b.db.Conn(t, b.db.AppURL)
	for _, stmt := range []string{
		`SELECT tollgate.record_stripe_event('evt_1', 'x')`,
		`SELECT tollgate.stripe_event_seen('evt_1')`,
		`SELECT tollgate.sync_subscription('sub_1', 'cus_1', 'active', '{}', '{}', NULL, NULL, false, NULL, now())`,
		`SELECT tollgate.link_checkout_session('cs_1', 'cus_1', 'c')`,
		`SELECT tollgate.start_sync_run()`,
		`SELECT tollgate.finish_sync_run(1, 0)`,
		`SELECT * FROM tollgate.last_sync_run()`,
	} {
		_, err := app.Exec(ctx, stmt)
		requireCode(t, err, "42501")
	}
	// the sidecar can
	_, _, applied, err := syncSQL(t, b.sidecar, "sub_1", "cus_1", "active", []string{"price_pro_monthly"}, time.Now(), "")
	require.NoError(t, err)
	require.True(t, applied)
	var first bool
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.record_stripe_event('evt_1', 'x')`).Scan(&first))
	require.True(t, first)
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.record_stripe_event('evt_1', 'x')`).Scan(&first))
	require.False(t, first)
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.stripe_event_seen('evt_1')`).Scan(&first))
	require.True(t, first)
	_, err = b.sidecar.Exec(ctx, `SELECT tollgate.link_checkout_session('cs_test_1', 'cus_1', 'c')`)
	require.NoError(t, err)
}

func TestSyncSubscriptionRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, stmt := range []string{
		`SELECT tollgate.sync_subscription(NULL, 'cus_1', 'active', '{}', '{}', NULL, NULL, false, NULL, now())`,
		`SELECT tollgate.sync_subscription('si_1', 'cus_1', 'active', '{}', '{}', NULL, NULL, false, NULL, now())`,
		`SELECT tollgate.sync_subscription('sub_1', 'acct_1', 'active', '{}', '{}', NULL, NULL, false, NULL, now())`,
		`SELECT tollgate.sync_subscription('sub_1', 'cus_1', '', '{}', '{}', NULL, NULL, false, NULL, now())`,
		`SELECT tollgate.sync_subscription('sub_1', 'cus_1', 'active', '{NULL}', '{}', NULL, NULL, false, NULL, now())`,
		`SELECT tollgate.sync_subscription('sub_1', 'cus_1', 'active', '{}', '{}', NULL, NULL, false, NULL, NULL)`,
		// a period read as 0 is a bug upstream, never a date to store
		`SELECT tollgate.sync_subscription('sub_1', 'cus_1', 'active', '{}', '{}', 'epoch', now(), false, NULL, now())`,
		`SELECT tollgate.sync_subscription('sub_1', 'cus_1', 'active', '{}', '{}', now(), 'epoch', false, NULL, now())`,
		`SELECT tollgate.record_stripe_event('ev_1', 'x')`,
		`SELECT tollgate.record_stripe_event('evt_1', '')`,
		`SELECT tollgate.link_checkout_session('cs_1', 'cus_1', '')`,
		`SELECT tollgate.link_checkout_session('cs_1', NULL, 'c')`,
		`SELECT tollgate.link_checkout_session('sub_1', 'cus_1', 'c')`,
	} {
		_, err := b.sidecar.Exec(ctx, stmt)
		requireCode(t, err, "TG422", stmt)
	}
	_, err := b.sidecar.Exec(ctx, `SELECT tollgate.finish_sync_run(12345, 0)`)
	requireCode(t, err, "TG404")
	require.Zero(t, b.rowsEverywhere(t))
}

func TestOlderFetchNeverOverwritesNewer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.set_customer('alice', NULL, 'cus_alice')`)
	now := time.Now()
	_, plan, applied, err := syncSQL(t, b.sidecar, "sub_a", "cus_alice", "canceled", []string{"price_pro_monthly"}, now, "")
	require.NoError(t, err)
	require.True(t, applied)
	require.Equal(t, "pro", *plan)
	require.Equal(t, "free", b.plan(t, "alice"))
	// a fetch that started earlier (it saw the subscription still active) arrives late: ignored
	_, _, applied, err = syncSQL(t, b.sidecar, "sub_a", "cus_alice", "active", []string{"price_pro_monthly"}, now.Add(-time.Second), "mallory")
	require.NoError(t, err)
	require.False(t, applied)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.stripe_links`), "a stale fetch recorded its metadata")
	require.Equal(t, "free", b.plan(t, "alice"))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tollgate.subscriptions WHERE status = 'canceled'`))
	// the same fetch time again applies (idempotent), a later one too
	_, _, applied, err = syncSQL(t, b.sidecar, "sub_a", "cus_alice", "active", []string{"price_pro_monthly"}, now.Add(time.Second), "")
	require.NoError(t, err)
	require.True(t, applied)
	require.Equal(t, "pro", b.plan(t, "alice"))
}

func TestCustomerMappingPrecedence(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	pro := []string{"price_pro_monthly"}

	// nobody: stored, customer NULL
	customer, plan, _, err := syncSQL(t, b.sidecar, "sub_1", "cus_1", "active", pro, time.Now(), "")
	require.NoError(t, err)
	require.Nil(t, customer)
	require.Equal(t, "pro", *plan)

	// a checkout link appears: linked, customer registered on pro
	var owner string
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.link_checkout_session('cs_test_1', 'cus_1', 'carol')`).Scan(&owner))
	require.Equal(t, "carol", owner)
	require.Equal(t, "pro", b.plan(t, "carol"))

	// metadata beats checkout: the subscription moves to dave
	customer, _, _, err = syncSQL(t, b.sidecar, "sub_1", "cus_1", "active", pro, time.Now(), "dave")
	require.NoError(t, err)
	require.Equal(t, "dave", *customer)
	require.Equal(t, "pro", b.plan(t, "dave"))
	require.Equal(t, "free", b.plan(t, "carol"))
	// a later checkout does not take it back
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.link_checkout_session('cs_test_2', 'cus_1', 'carol')`).Scan(&owner))
	require.Equal(t, "dave", owner)
	require.Equal(t, "free", b.plan(t, "carol"))

	// the app's own link beats both
	b.exec(t, `SELECT tollgate.set_customer('erin', NULL, 'cus_1')`)
	require.Equal(t, "pro", b.plan(t, "erin"))
	require.Equal(t, "free", b.plan(t, "dave"))
	customer, _, _, err = syncSQL(t, b.sidecar, "sub_1", "cus_1", "active", pro, time.Now(), "dave")
	require.NoError(t, err)
	require.Equal(t, "erin", *customer)
	require.Equal(t, "free", b.plan(t, "dave"))

	// an unmapped subscription is linked when set_customer names its Stripe customer later
	customer, _, _, err = syncSQL(t, b.sidecar, "sub_2", "cus_2", "trialing", pro, time.Now(), "")
	require.NoError(t, err)
	require.Nil(t, customer)
	b.exec(t, `SELECT tollgate.set_customer('frank', NULL, 'cus_2')`)
	require.Equal(t, "pro", b.plan(t, "frank"))
}

func TestReconcileLockIsExclusive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	holder := b.db.Conn(t, b.db.SidecarURL)
	var run *int64
	require.NoError(t, holder.QueryRow(ctx, `SELECT tollgate.start_sync_run()`).Scan(&run))
	require.NotNil(t, run)

	_, err := b.syncer.Reconcile(ctx, nil)
	require.ErrorIs(t, err, stripesync.ErrLocked)
	b.metric(t, `tollgate_stripe_reconcile_runs_total{result="locked"} 1`)

	_, err = holder.Exec(ctx, `SELECT tollgate.finish_sync_run($1, 0)`, *run)
	require.NoError(t, err)
	res, err := b.syncer.Reconcile(ctx, nil)
	require.NoError(t, err)
	require.NotZero(t, res.Run)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM tollgate.sync_runs WHERE finished_at IS NOT NULL AND error IS NULL`))
}

// The interleaving of two syncs of one subscription: whichever commits first, the fetch that started later wins.
func TestConcurrentSyncsKeepTheLaterFetch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	pro := []string{"price_pro_monthly"}
	for i, firstIsNewer := range []bool{true, false} {
		sub, cus, customer := fmt.Sprintf("sub_%d", i), fmt.Sprintf("cus_%d", i), fmt.Sprintf("c%d", i)
		b.exec(t, `SELECT tollgate.set_customer($1, NULL, $2)`, customer, cus)
		newer, older := time.Now(), time.Now().Add(-time.Second)
		first, second := newer, older
		firstStatus, secondStatus := "canceled", "active"
		if !firstIsNewer {
			first, second = older, newer
			firstStatus, secondStatus = "active", "canceled"
		}
		c1, c2 := b.db.Conn(t, b.db.SidecarURL), b.db.Conn(t, b.db.SidecarURL)
		tx, err := c1.Begin(ctx)
		require.NoError(t, err)
		_, _, applied, err := syncSQL(t, tx, sub, cus, firstStatus, pro, first, "")
		require.NoError(t, err)
		require.True(t, applied)

		type result struct {
			applied bool
			err     error
		}
		done := make(chan result, 1)
		go func() {
			_, _, applied, err := syncSQL(t, c2, sub, cus, secondStatus, pro, second, "")
			done <- result{applied, err}
		}()
		waitForLock(t, b, c2.PgConn().PID())
		require.NoError(t, tx.Commit(ctx))
		r := <-done
		require.NoError(t, r.err)
		require.Equal(t, !firstIsNewer, r.applied)
		require.Equal(t, "free", b.plan(t, customer), "the later fetch said canceled")
	}
}

// waitForLock waits until the backend pid waits for a lock (PostgreSQL's own view of the interleaving).
func waitForLock(t *testing.T, b *testBundle, pid uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		require.NoError(t, b.owner.QueryRow(context.Background(),
			`SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&waiting))
		if waiting {
			return
		}
		require.True(t, time.Now().Before(deadline), "backend %d never waited for the lock", pid)
		time.Sleep(5 * time.Millisecond)
	}
}
