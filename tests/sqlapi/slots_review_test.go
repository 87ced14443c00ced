package sqlapi_test

// Review of slotted usage rows (commit 70783d6): reproductions of bugs found
// in sql/slots.sql and sql/gate.sql. Every test drives real concurrent
// transactions on their own connections; a step that may wait for a lock runs
// in a goroutine and is awaited until it returns or its backend waits for a
// lock (pg_stat_activity, with a deadline).

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type reviewStep struct {
	v   verdict
	err error
}

// startReviewStep runs one public verdict function in a goroutine.
func startReviewStep(q querier, fn, customer, feature string, amount int64) <-chan reviewStep {
	ch := make(chan reviewStep, 1)
	go func() {
		v, err := tryCall(context.Background(), q, fn, customer, feature, amount)
		ch <- reviewStep{v, err}
	}()
	return ch
}

// awaitReviewStep returns the step's result and true once it returned, or
// false once backend pid waits for a lock (the step is still running).
func awaitReviewStep(t *testing.T, b *bundle, ch <-chan reviewStep, pid int32) (reviewStep, bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case r := <-ch:
			return r, true
		default:
		}
		if b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, pid) > 0 {
			return reviewStep{}, false
		}
		require.True(t, time.Now().Before(deadline), "backend %d neither returned nor waited for a lock", pid)
		time.Sleep(2 * time.Millisecond) // polling the server's view of another session, with a deadline
	}
}

// receiveReviewStep waits for a step that is known to finish (with a deadline).
func receiveReviewStep(t *testing.T, ch <-chan reviewStep) reviewStep {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("a step never returned")
		return reviewStep{}
	}
}

func reviewConn(t *testing.T, b *bundle) (*pgx.Conn, int32) {
	t.Helper()
	c := b.db.Conn(t, b.db.AppURL)
	var pid int32
	require.NoError(t, c.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&pid))
	return c, pid
}

// Two transactions run the same program on one customer: consume feature a
// (slotted), consume feature b (a plain row), give a back. With plain rows
// the second transaction waits at its first call until the first commits, and
// both commit. With slots both count on a slot of a; T2 takes b's row; T1
// waits for b; T2's refund of a finds a's row free, takes it (SKIP LOCKED,
// although T2 holds a slot of a) and goes to the full path, whose _settle
// waits for T1's slot: a deadlock (40P01) that plain rows never have. The
// same happens when T2's second call on a is a consume that goes to the full
// path (a mark, or an amount above the leases).
func TestSlotReviewSlotHolderTakingTheRowDeadlocks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "a", "month", "hard", []int32{100}, ptr[int64](1000))
	b.feature(t, "b", "month", "hard", []int32{100}, ptr[int64](1000))
	primeSlotted(t, b, "c", "a")
	require.True(t, call(t, b.owner, "consume", "c", "a", 1).Allowed) // the row leases to 16 slots
	require.True(t, call(t, b.owner, "consume", "c", "b", 1).Allowed) // b: a plain usage row
	require.EqualValues(t, 16, slotCount(t, b, "c", "a"))

	ctx := context.Background()
	c1, pid1 := reviewConn(t, b)
	c2, pid2 := reviewConn(t, b)
	tx1, err := c1.Begin(ctx)
	require.NoError(t, err)
	tx2, err := c2.Begin(ctx)
	require.NoError(t, err)

	require.True(t, call(t, tx1, "consume", "c", "a", 1).Allowed)
	r, done := awaitReviewStep(t, b, startReviewStep(tx2, "consume", "c", "a", 1), pid2)
	if !done {
		t.Fatal("T2 waited for T1 at its first call (the plain-row behaviour); this test needs slots")
	}
	require.NoError(t, r.err)
	require.True(t, r.v.Allowed)

	require.True(t, call(t, tx2, "consume", "c", "b", 1).Allowed) // T2 holds b's row
	s1 := startReviewStep(tx1, "consume", "c", "b", 1)            // T1 waits for T2 at b
	_, done = awaitReviewStep(t, b, s1, pid1)
	require.False(t, done, "T1 waits for b's row, held by T2")
	s2 := startReviewStep(tx2, "refund", "c", "a", 1)

	var r1, r2 reviewStep
	for got := 0; got < 2; got++ {
		select {
		case r1 = <-s1:
			if r1.err != nil {
				_ = tx1.Rollback(ctx)
			}
		case r2 = <-s2:
			if r2.err != nil {
				_ = tx2.Rollback(ctx)
			} else {
				require.NoError(t, tx2.Commit(ctx))
			}
		case <-time.After(30 * time.Second):
			t.Fatal("neither transaction returned")
		}
	}
	t.Logf("T1 consume b: SQLSTATE %q; T2 refund a: SQLSTATE %q", sqlstate(r1.err), sqlstate(r2.err))
	require.NotEqual(t, "40P01", sqlstate(r1.err), "T1 was chosen as a deadlock victim: %v", r1.err)
	require.NotEqual(t, "40P01", sqlstate(r2.err), "T2 was chosen as a deadlock victim: %v", r2.err)
	require.NoError(t, r1.err)
	require.NoError(t, r2.err)
	require.True(t, call(t, tx1, "refund", "c", "a", 1).Allowed)
	require.NoError(t, tx1.Commit(ctx))
	require.EqualValues(t, 1, totalUsed(t, b, "c", "a"))
	require.EqualValues(t, 3, totalUsed(t, b, "c", "b"))
}

// Two transactions that counted on slots of one key each give back more than
// their own slot holds while a third transaction holds the key's row. Each
// gives back what its own slot holds, never more (the row's holder is not
// waited for): the total never goes below 0, check never reports negative
// usage or more remaining than the quota, and the window then allows exactly
// its quota minus the total. (Before the fix each capped its refund at the
// committed total it saw, both spent the same units, and the total went to
// -10.)
func TestSlotReviewConcurrentOwnSlotRefundsNeverBelowZero(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](1000))
	primeSlotted(t, b, "c", "f")
	require.True(t, call(t, b.owner, "consume", "c", "f", 10).Allowed) // committed 10; leases of 30 to 16 slots
	require.EqualValues(t, 10, totalUsed(t, b, "c", "f"))

	ctx := context.Background()
	c1, pid1 := reviewConn(t, b)
	c2, pid2 := reviewConn(t, b)
	cr, _ := reviewConn(t, b)
	tx1, err := c1.Begin(ctx)
	require.NoError(t, err)
	tx2, err := c2.Begin(ctx)
	require.NoError(t, err)
	txR, err := cr.Begin(ctx)
	require.NoError(t, err)

	require.True(t, call(t, tx1, "consume", "c", "f", 1).Allowed) // on a slot
	require.True(t, call(t, tx2, "consume", "c", "f", 1).Allowed) // on another slot
	// more than any slot's lease: R counts on the row and holds it
	require.True(t, call(t, txR, "consume", "c", "f", 100).Allowed)

	s1 := startReviewStep(tx1, "refund", "c", "f", 1000)
	r1, done1 := awaitReviewStep(t, b, s1, pid1)
	s2 := startReviewStep(tx2, "refund", "c", "f", 1000)
	r2, done2 := awaitReviewStep(t, b, s2, pid2)
	require.NoError(t, txR.Rollback(ctx))
	if !done1 {
		r1 = receiveReviewStep(t, s1)
	}
	if !done2 {
		r2 = receiveReviewStep(t, s2)
	}
	require.NoError(t, r1.err)
	require.NoError(t, r2.err)
	t.Logf("refund verdicts: T1 %s, T2 %s", show(r1.v), show(r2.v))
	require.NoError(t, tx1.Commit(ctx))
	require.NoError(t, tx2.Commit(ctx))

	v := call(t, b.owner, "check", "c", "f", 1)
	t.Logf("after both refunds: total %d, check %s", totalUsed(t, b, "c", "f"), show(v))
	total := totalUsed(t, b, "c", "f")
	assert.GreaterOrEqual(t, total, int64(0), "the total went below 0")
	assert.LessOrEqual(t, total, int64(10), "each own slot's unit was given back")
	assert.Equal(t, total, v.Used)
	assert.GreaterOrEqual(t, v.Used, int64(0), "check reports negative usage")
	assert.LessOrEqual(t, *v.Remaining, int64(1000), "check reports more remaining than the quota")

	// the units given back twice are usable: the window allows more than its quota
	app := b.db.Conn(t, b.db.AppURL)
	var allowed int64
	for i := 0; i < 1100; i++ {
		if !call(t, app, "consume", "c", "f", 1).Allowed {
			break
		}
		allowed++
	}
	assert.EqualValues(t, 1000-total, allowed, "calls allowed after the refunds, quota 1000")
}

// The documented corner (a transaction that counted on a slot, finds no slot
// with room and another transaction holding the row, is refused without
// counting) also refuses consume on a SOFT limit far below its quota: soft
// enforcement promises that consume always allows and records the overage.
func TestSlotReviewSoftLimitConsumeRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "s", "month", "soft", []int32{100}, ptr[int64](1000))
	primeSlotted(t, b, "c", "s")
	require.True(t, call(t, b.owner, "consume", "c", "s", 10).Allowed) // leases of 30 to 16 slots

	ctx := context.Background()
	c1, pid1 := reviewConn(t, b)
	cr, _ := reviewConn(t, b)
	tx1, err := c1.Begin(ctx)
	require.NoError(t, err)
	txR, err := cr.Begin(ctx)
	require.NoError(t, err)
	require.True(t, call(t, tx1, "consume", "c", "s", 1).Allowed)   // on a slot
	require.True(t, call(t, txR, "consume", "c", "s", 100).Allowed) // R holds the row

	s := startReviewStep(tx1, "consume", "c", "s", 50) // more than a lease; 61 + 100 of 1000 with R
	r, done := awaitReviewStep(t, b, s, pid1)
	require.NoError(t, txR.Commit(ctx))
	if !done {
		r = receiveReviewStep(t, s)
	}
	require.NoError(t, r.err)
	t.Logf("soft consume(50) at 11 of 1000: %s", show(r.v))
	require.True(t, r.v.Allowed, "a soft limit allows every consume")
	require.NoError(t, tx1.Commit(ctx))
	require.EqualValues(t, 161, totalUsed(t, b, "c", "s"))
}

// A REPEATABLE READ transaction that holds a slotted key's row: with a plain
// row nobody else can change the key until it ends. With slots others keep
// counting on slots meanwhile, and its next full-path call (_settle locks
// every slot) may fail with 40001, which PostgreSQL asks the caller to retry
// (documented): it never miscounts, and the other transaction's unit stays.
func TestSlotReviewRepeatableReadRowHolderSerializationFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](1000))
	primeSlotted(t, b, "c", "f")
	require.True(t, call(t, b.owner, "consume", "c", "f", 10).Allowed) // leases of 30 to 16 slots

	ctx := context.Background()
	c1, _ := reviewConn(t, b)
	c2, pid2 := reviewConn(t, b)
	tx1, err := c1.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	require.True(t, call(t, tx1, "consume", "c", "f", 100).Allowed) // T1 holds the row

	// another transaction counts one unit (on a slot) and commits
	s := startReviewStep(c2, "consume", "c", "f", 1)
	r, done := awaitReviewStep(t, b, s, pid2)
	if done {
		require.NoError(t, r.err)
		require.True(t, r.v.Allowed)
	}
	_, err = tryCall(ctx, tx1, "refund", "c", "f", 100) // full path: _settle
	if err != nil {
		_ = tx1.Rollback(ctx)
	} else {
		require.NoError(t, tx1.Commit(ctx))
	}
	if !done {
		r = receiveReviewStep(t, s)
	}
	require.Contains(t, []string{"", "40001"}, sqlstate(err), "T1's refund: %v", err)
	require.NoError(t, r.err)
	// 10 + 1 either way: T1's 100 was given back, or rolled back with it
	require.EqualValues(t, 11, totalUsed(t, b, "c", "f"))
}
