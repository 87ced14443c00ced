package sqlapi_test

// Slotted usage rows: a hot customer's consume calls spread over a few
// usage_slots rows, each counting within a lease granted from the usage row.
// These tests hold slotted rows to the same promises as plain ones: exact
// limits, one event per crossing, refunds, window rollover, config and plan
// changes, row gates, and no deadlocks, under real concurrency.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// totalUsed is the true usage of a key in its row's window: usage.used plus
// what the slots of that window hold. 0 when the key has no usage row.
func totalUsed(t testing.TB, b *bundle, customer, feature string) int64 {
	t.Helper()
	return b.count(t, `
		SELECT coalesce((
		  SELECT u.used + coalesce((SELECT sum(s.used) FROM tollgate.usage_slots s
		                             WHERE s.customer = u.customer AND s.feature = u.feature
		                               AND s.window_start = u.window_start), 0)
		    FROM tollgate.usage u WHERE u.customer = $1 AND u.feature = $2), 0)::bigint`, customer, feature)
}

// forceSlotted makes a key's usage row slotted, as contention would. The row
// must exist.
func forceSlotted(t testing.TB, b *bundle, customer, feature string) {
	t.Helper()
	tag, err := b.owner.Exec(context.Background(),
		`UPDATE tollgate.usage SET slotted = true WHERE customer = $1 AND feature = $2`, customer, feature)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), "no usage row for %s/%s: consume once first", customer, feature)
}

// primeSlotted creates the key's usage row at zero usage (one consume given
// back) and makes it slotted.
func primeSlotted(t testing.TB, b *bundle, customer, feature string) {
	t.Helper()
	require.True(t, call(t, b.owner, "consume", customer, feature, 1).Allowed)
	require.EqualValues(t, 0, call(t, b.owner, "refund", customer, feature, 1).Used)
	forceSlotted(t, b, customer, feature)
	require.EqualValues(t, 0, totalUsed(t, b, customer, feature))
}

// slotCount is how many slot rows a key has, for logs that show the slots were used.
func slotCount(t testing.TB, b *bundle, customer, feature string) int64 {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM tollgate.usage_slots WHERE customer = $1 AND feature = $2`, customer, feature)
}

// requireSlotInvariants checks a key at rest (no transaction on it running):
// no negative counts, each slot of the row's window within
// its lease, and, on a hard limit, usage.used + usage.leased within the quota.
// leasesAddUp also requires usage.leased to be the sum of the window's slot
// leases (only for runs without config or plan changes).
func requireSlotInvariants(t testing.TB, b *bundle, customer, feature string, leasesAddUp bool) {
	t.Helper()
	var (
		used, leased int64
		quota        *int64
		soft         bool
	)
	require.NoError(t, b.owner.QueryRow(context.Background(),
		`SELECT used, leased, quota, soft FROM tollgate.usage WHERE customer = $1 AND feature = $2`,
		customer, feature).Scan(&used, &leased, &quota, &soft))
	require.GreaterOrEqual(t, used, int64(0), "usage.used")
	require.GreaterOrEqual(t, leased, int64(0), "usage.leased")
	if quota != nil && !soft {
		require.LessOrEqual(t, used+leased, *quota, "usage.used %d + usage.leased %d exceed the quota", used, leased)
	}
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.usage_slots
	                             WHERE customer = $1 AND feature = $2 AND (used < 0 OR lease < 0)`, customer, feature),
		"a slot with a negative used or lease")
	// the slots of the row's window
	const current = `FROM tollgate.usage_slots s JOIN tollgate.usage u USING (customer, feature, window_start)
	                WHERE u.customer = $1 AND u.feature = $2`
	require.Zero(t, b.count(t, `SELECT count(*) `+current+` AND s.used > s.lease`, customer, feature),
		"a slot of the current window used past its lease")
	if leasesAddUp {
		require.Equal(t, leased, b.count(t, `SELECT coalesce(sum(s.lease), 0)::bigint `+current, customer, feature),
			"usage.leased is the sum of the window's slot leases")
	}
}

// newPool is a pool of up to n connections to connURL with extra session settings.
func newPool(t testing.TB, connURL string, n int32, params map[string]string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(connURL)
	require.NoError(t, err)
	cfg.MaxConns = n
	for k, v := range params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// tryCall is call that returns its error, for goroutines.
func tryCall(ctx context.Context, q querier, fn, customer, feature string, amount int64) (verdict, error) {
	var v verdict
	err := q.QueryRow(ctx, `SELECT `+verdictCols+` FROM tollgate.`+fn+`($1, $2, $3)`, customer, feature, amount).
		Scan(&v.Allowed, &v.Customer, &v.Feature, &v.Plan, &v.Used, &v.Quota, &v.Remaining, &v.ResetsAt, &v.Message)
	return v, err
}

// tryAt is at that returns its error, for goroutines (owner only).
func tryAt(ctx context.Context, q querier, mode, customer, feature string, amount int64, when time.Time) (verdict, error) {
	var v verdict
	err := q.QueryRow(ctx, `SELECT `+verdictCols+` FROM tollgate._gate($1, $2, $3, $4, $5)`,
		customer, feature, amount, mode, when).
		Scan(&v.Allowed, &v.Customer, &v.Feature, &v.Plan, &v.Used, &v.Quota, &v.Remaining, &v.ResetsAt, &v.Message)
	return v, err
}

// show formats a verdict for failure messages.
func show(v verdict) string {
	n := func(p *int64) string {
		if p == nil {
			return "NULL"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("{allowed %t, plan %s, used %d, quota %s, remaining %s}", v.Allowed, v.Plan, v.Used, n(v.Quota), n(v.Remaining))
}

// race runs clients goroutines, each on its own connection of pool, each
// calling fn iters times, all released at once. Any error fn returns stops
// that client and fails the test.
func race(t *testing.T, pool *pgxpool.Pool, clients, iters int,
	fn func(ctx context.Context, c *pgxpool.Conn, client, iter int) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conns := make([]*pgxpool.Conn, clients)
	for i := range conns {
		c, err := pool.Acquire(ctx)
		require.NoError(t, err)
		conns[i] = c
		defer c.Release()
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		start = make(chan struct{})
		errs  []string
	)
	for i := range clients {
		wg.Add(1)
		go func(client int, c *pgxpool.Conn) {
			defer wg.Done()
			<-start
			for j := range iters {
				if err := fn(ctx, c, client, j); err != nil {
					mu.Lock()
					msg := fmt.Sprintf("client %d, iteration %d: SQLSTATE %q: %v", client, j, sqlstate(err), err)
					var pgErr *pgconn.PgError
					if errors.As(err, &pgErr) && pgErr.Detail != "" {
						msg += "\nDETAIL: " + pgErr.Detail + "\nCONTEXT: " + pgErr.Where
					}
					errs = append(errs, msg)
					mu.Unlock()
					return
				}
			}
		}(i, conns[i])
	}
	close(start)
	wg.Wait()
	require.Empty(t, errs)
}

// consumer counts the verdicts of consume calls made in a race.
type consumer struct {
	allowed, blocked atomic.Int64
}

// consume is a race body: one tollgate.consume(customer, feature) call.
func (s *consumer) consume(customer, feature string) func(ctx context.Context, c *pgxpool.Conn, _, _ int) error {
	return func(ctx context.Context, c *pgxpool.Conn, _, _ int) error {
		v, err := tryCall(ctx, c, "consume", customer, feature, 1)
		if err != nil {
			return err
		}
		if v.Allowed {
			s.allowed.Add(1)
		} else {
			s.blocked.Add(1)
		}
		return nil
	}
}

func events(t testing.TB, b *bundle, customer, kind string) int64 {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM tollgate.events WHERE customer = $1 AND kind = $2`, customer, kind)
}

// 1. A hard limit on a slotted row is exact, with one event per crossing at
// the exact usage. (A quota this small leaves no room for leases: the calls
// go through the slotted row itself; 1b has leases.)
func TestSlotHardLimitExact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "hard", []int32{50, 80, 100}, ptr[int64](50))
	primeSlotted(t, b, "hot", "api_calls")

	var s consumer
	race(t, b.appPool(t, 32), 32, 300, s.consume("hot", "api_calls"))
	require.EqualValues(t, 50, s.allowed.Load())
	require.EqualValues(t, 32*300-50, s.blocked.Load())
	require.EqualValues(t, 50, totalUsed(t, b, "hot", "api_calls"))
	v := call(t, b.owner, "check", "hot", "api_calls", 1)
	require.False(t, v.Allowed)
	require.EqualValues(t, 50, v.Used)

	require.EqualValues(t, 1, events(t, b, "hot", "limit_reached"))
	require.EqualValues(t, 50, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'limit_reached'`))
	for pct, used := range map[int]int64{50: 25, 80: 40, 100: 50} {
		require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'threshold' AND threshold = $1`, pct), "threshold %d", pct)
		require.EqualValues(t, used, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = $1`, pct), "threshold %d", pct)
	}
	requireSlotInvariants(t, b, "hot", "api_calls", true)
	t.Logf("slots: %d", slotCount(t, b, "hot", "api_calls"))
}

// 1b. The same with a quota large enough for the slots to hold leases
// between the marks: exact at every mark and at the quota.
func TestSlotHardLimitExactWithLeases(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "hard", []int32{50, 80, 100}, ptr[int64](5000))
	primeSlotted(t, b, "hot", "api_calls")

	var s consumer
	race(t, b.appPool(t, 32), 32, 300, s.consume("hot", "api_calls"))
	require.EqualValues(t, 5000, s.allowed.Load())
	require.EqualValues(t, 32*300-5000, s.blocked.Load())
	require.EqualValues(t, 5000, totalUsed(t, b, "hot", "api_calls"))
	require.EqualValues(t, 5000, call(t, b.owner, "check", "hot", "api_calls", 1).Used)
	require.EqualValues(t, 1, events(t, b, "hot", "limit_reached"))
	require.EqualValues(t, 5000, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'limit_reached'`))
	for pct, used := range map[int]int64{50: 2500, 80: 4000, 100: 5000} {
		require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'threshold' AND threshold = $1`, pct), "threshold %d", pct)
		require.EqualValues(t, used, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = $1`, pct), "threshold %d", pct)
	}
	require.Positive(t, slotCount(t, b, "hot", "api_calls"), "the slots were used")
	requireSlotInvariants(t, b, "hot", "api_calls", true)
}

// 2. Far from any mark, a slotted row leases to slots and counts every call.
func TestSlotLargeQuotaCountsEverything(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "month", "hard", []int32{100}, ptr[int64](1_000_000))
	primeSlotted(t, b, "hot", "api_calls")

	var s consumer
	race(t, b.appPool(t, 32), 32, 200, s.consume("hot", "api_calls"))
	require.EqualValues(t, 32*200, s.allowed.Load())
	require.Zero(t, s.blocked.Load())
	require.EqualValues(t, 6400, totalUsed(t, b, "hot", "api_calls"))

	v := call(t, b.owner, "check", "hot", "api_calls", 1)
	require.True(t, v.Allowed)
	require.EqualValues(t, 6400, v.Used)
	require.EqualValues(t, 1_000_000-6400, *v.Remaining)
	app := b.db.Conn(t, b.db.AppURL)
	var used int64
	require.NoError(t, app.QueryRow(context.Background(),
		`SELECT used FROM tollgate.usage('hot') WHERE feature = 'api_calls'`).Scan(&used))
	require.EqualValues(t, 6400, used, "tollgate.usage reports the total")

	// the slots were counted on (holder stays set; the leases themselves may
	// be folded back already if the last calls found the contention over)
	require.Positive(t, b.count(t, `SELECT count(*) FROM tollgate.usage_slots WHERE holder IS NOT NULL`))
	requireSlotInvariants(t, b, "hot", "api_calls", true)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.events`))
	t.Logf("slots: %d, slot used: %d", slotCount(t, b, "hot", "api_calls"),
		b.count(t, `SELECT coalesce(sum(used), 0)::bigint FROM tollgate.usage_slots`))
}

// 3. Transactions that consume several times on one slotted key (some rolled
// back) never deadlock, count exactly what committed, and leave the quota
// exactly reachable.
func TestSlotMultiCallTransactions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{50, 100}, ptr[int64](500))
	primeSlotted(t, b, "hot", "f")

	var committed atomic.Int64
	race(t, b.appPool(t, 16), 16, 40, func(ctx context.Context, c *pgxpool.Conn, _, iter int) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		var got int64
		for _, amount := range []int64{1, 2, 1} {
			v, err := tryCall(ctx, tx, "consume", "hot", "f", amount)
			if err != nil {
				_ = tx.Rollback(ctx)
				return err
			}
			if v.Allowed {
				got += amount
			}
		}
		if iter%4 == 3 {
			return tx.Rollback(ctx)
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		committed.Add(got)
		return nil
	})
	total := totalUsed(t, b, "hot", "f")
	require.Equal(t, committed.Load(), total, "usage is what committed transactions were allowed")
	require.LessOrEqual(t, total, int64(500))
	requireSlotInvariants(t, b, "hot", "f", true)
	t.Logf("after the run: total %d, slots %d", total, slotCount(t, b, "hot", "f"))

	// the quota is exactly reachable afterwards, and then blocks
	app := b.db.Conn(t, b.db.AppURL)
	for i := 0; i <= 500; i++ {
		if !call(t, app, "consume", "hot", "f", 1).Allowed {
			break
		}
	}
	require.EqualValues(t, 500, totalUsed(t, b, "hot", "f"))
	v := call(t, app, "consume", "hot", "f", 1)
	require.False(t, v.Allowed)
	require.EqualValues(t, 500, v.Used)
	require.EqualValues(t, 500, call(t, app, "check", "hot", "f", 1).Used)
	require.EqualValues(t, 1, events(t, b, "hot", "limit_reached"))
	for _, pct := range []int{50, 100} {
		require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'threshold' AND threshold = $1`, pct), "threshold %d", pct)
	}
}

// 4. Refunds on a slotted key under contention, inside and outside the
// consuming transaction, net out exactly and never go below zero.
func TestSlotRefundsUnderContention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](1000))
	primeSlotted(t, b, "hot", "f")

	const clients, iters = 16, 20
	var (
		net     atomic.Int64
		mu      sync.Mutex
		refused []string // consume(2) calls refused far below the quota
	)
	race(t, b.appPool(t, clients), clients, iters, func(ctx context.Context, c *pgxpool.Conn, client, iter int) error {
		// consumeThenRefund returns the net it counted: 1, or 0 when the consume was refused
		consumeThenRefund := func(q querier) (int64, error) {
			v, err := tryCall(ctx, q, "consume", "hot", "f", 2)
			if err != nil {
				return 0, err
			}
			if !v.Allowed {
				mu.Lock()
				refused = append(refused, fmt.Sprintf("client %d, iteration %d: %s", client, iter, show(v)))
				mu.Unlock()
				return 0, nil
			}
			v, err = tryCall(ctx, q, "refund", "hot", "f", 1)
			if err != nil {
				return 0, err
			}
			if v.Used < 0 {
				return 0, fmt.Errorf("refund reported used %d", v.Used)
			}
			return 1, nil
		}
		if iter%2 == 1 { // separate transactions
			n, err := consumeThenRefund(c)
			net.Add(n)
			return err
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		n, err := consumeThenRefund(tx)
		if err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		net.Add(n)
		return nil
	})
	require.Equal(t, net.Load(), totalUsed(t, b, "hot", "f"))
	require.Equal(t, net.Load(), call(t, b.owner, "check", "hot", "f", 1).Used)
	requireSlotInvariants(t, b, "hot", "f", true)
	require.Empty(t, refused, "consume(2) refused far below the quota (1000), in a transaction that had counted nothing")
	require.EqualValues(t, clients*iters, net.Load())

	// refunding more than is used stops at zero
	v := call(t, b.owner, "refund", "hot", "f", clients*iters+5)
	require.EqualValues(t, 0, v.Used)
	require.EqualValues(t, 0, totalUsed(t, b, "hot", "f"))
	requireSlotInvariants(t, b, "hot", "f", false)
}

// 5a. A lowered limit applies to a slotted key: the total ends exactly at it.
func TestSlotConfigChangeBetweenRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10000))
	primeSlotted(t, b, "hot", "f")

	var s consumer
	race(t, b.appPool(t, 16), 16, 50, s.consume("hot", "f"))
	require.EqualValues(t, 800, s.allowed.Load())
	require.EqualValues(t, 800, totalUsed(t, b, "hot", "f"))

	b.exec(t, `SELECT tollgate.set_limit('free', 'f', 820)`)
	forceSlotted(t, b, "hot", "f")
	var s2 consumer
	race(t, b.appPool(t, 16), 16, 50, s2.consume("hot", "f"))
	require.EqualValues(t, 20, s2.allowed.Load())
	require.EqualValues(t, 820, totalUsed(t, b, "hot", "f"))
	v := call(t, b.owner, "check", "hot", "f", 1)
	require.False(t, v.Allowed)
	require.EqualValues(t, 820, v.Used)
	require.EqualValues(t, 820, *v.Quota)
	require.EqualValues(t, 1, events(t, b, "hot", "limit_reached"))
	requireSlotInvariants(t, b, "hot", "f", false)
}

// 5b. A limit lowered while a slotted key is hammered applies to every call
// that starts after the change, and the total ends exactly at it.
func TestSlotConfigChangeMidRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](1_000_000))
	primeSlotted(t, b, "hot", "f")

	const limit = 300
	var (
		done, allowed, after atomic.Int64
		changed              atomic.Bool
		trigger              = make(chan struct{})
		changeErr            = make(chan error, 1)
	)
	go func() {
		<-trigger
		_, err := b.owner.Exec(context.Background(), `SELECT tollgate.set_limit('free', 'f', $1)`, limit)
		changed.Store(true)
		changeErr <- err
	}()
	race(t, b.appPool(t, 16), 16, 100, func(ctx context.Context, c *pgxpool.Conn, _, _ int) error {
		started := changed.Load()
		v, err := tryCall(ctx, c, "consume", "hot", "f", 1)
		if err != nil {
			return err
		}
		if v.Allowed {
			allowed.Add(1)
		}
		if started {
			after.Add(1)
			if v.Quota == nil || *v.Quota != limit {
				return fmt.Errorf("a call after the change: %s", show(v))
			}
			if v.Allowed && v.Used > limit {
				return fmt.Errorf("a call after the change was allowed past the limit: %s", show(v))
			}
		}
		if done.Add(1) == 100 {
			close(trigger)
		}
		return nil
	})
	require.NoError(t, <-changeErr)
	require.Positive(t, after.Load(), "the limit changed only after the run")
	require.EqualValues(t, limit, totalUsed(t, b, "hot", "f"))
	require.EqualValues(t, limit, allowed.Load())
	require.EqualValues(t, limit, call(t, b.owner, "check", "hot", "f", 1).Used)
	require.EqualValues(t, 1, events(t, b, "hot", "limit_reached"))
	requireSlotInvariants(t, b, "hot", "f", false)
}

// 6a. Plan changes between runs on a slotted key: free to pro lifts the
// limit at once, pro to free brings it back.
func TestSlotPlanChangeBetweenRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](30))
	b.exec(t, `SELECT tollgate.set_customer('c', NULL, 'cus_c')`)
	primeSlotted(t, b, "c", "f")

	var s consumer
	race(t, b.appPool(t, 16), 16, 10, s.consume("c", "f"))
	require.EqualValues(t, 30, s.allowed.Load())
	require.EqualValues(t, 30, totalUsed(t, b, "c", "f"))

	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
	           VALUES ('sub_c', 'cus_c', 'active', '{price_pro}')`)
	forceSlotted(t, b, "c", "f")
	var pro consumer
	race(t, b.appPool(t, 16), 16, 10, func(ctx context.Context, c *pgxpool.Conn, _, _ int) error {
		v, err := tryCall(ctx, c, "consume", "c", "f", 1)
		if err != nil {
			return err
		}
		if !v.Allowed || v.Plan != "pro" {
			return fmt.Errorf("on pro: %s", show(v))
		}
		pro.allowed.Add(1)
		return nil
	})
	require.EqualValues(t, 160, pro.allowed.Load())
	require.EqualValues(t, 190, totalUsed(t, b, "c", "f"), "the window's usage carries over to the new plan")
	v := call(t, b.owner, "check", "c", "f", 1)
	require.Equal(t, "pro", v.Plan)
	require.EqualValues(t, 190, v.Used)

	b.exec(t, `UPDATE tollgate.subscriptions SET status = 'canceled' WHERE stripe_subscription = 'sub_c'`)
	forceSlotted(t, b, "c", "f")
	var free consumer
	race(t, b.appPool(t, 16), 16, 10, free.consume("c", "f"))
	require.Zero(t, free.allowed.Load(), "back on free, 190 of 30 used")
	require.EqualValues(t, 190, totalUsed(t, b, "c", "f"))
	v = call(t, b.owner, "check", "c", "f", 1)
	require.Equal(t, "free", v.Plan)
	require.False(t, v.Allowed)

	// pro to free below the free quota: the total ends exactly at the free quota
	b.feature(t, "g", "month", "hard", []int32{100}, ptr[int64](200))
	b.exec(t, `UPDATE tollgate.subscriptions SET status = 'active' WHERE stripe_subscription = 'sub_c'`)
	primeSlotted(t, b, "c", "g")
	var g consumer
	race(t, b.appPool(t, 16), 16, 5, g.consume("c", "g"))
	require.EqualValues(t, 80, g.allowed.Load())
	b.exec(t, `UPDATE tollgate.subscriptions SET status = 'canceled' WHERE stripe_subscription = 'sub_c'`)
	forceSlotted(t, b, "c", "g")
	var g2 consumer
	race(t, b.appPool(t, 16), 16, 20, g2.consume("c", "g"))
	require.EqualValues(t, 120, g2.allowed.Load())
	require.EqualValues(t, 200, totalUsed(t, b, "c", "g"))
	requireSlotInvariants(t, b, "c", "g", false)
}

// 6b. Plan changes while a slotted key is hammered apply to every call that
// starts after them.
func TestSlotPlanChangeMidRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](200))
	b.exec(t, `SELECT tollgate.set_customer('up', NULL, 'cus_up')`)
	b.exec(t, `SELECT tollgate.set_customer('down', NULL, 'cus_down')`)
	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
	           VALUES ('sub_down', 'cus_down', 'active', '{price_pro}')`)
	primeSlotted(t, b, "up", "f")
	primeSlotted(t, b, "down", "f")

	// hammerWithChange runs 16 x 60 calls of customer and, once changeAt of
	// them have returned, the change.
	hammerWithChange := func(customer string, changeAt int64, change, planAfter string, quotaAfter *int64) (allowed, after int64) {
		var (
			done, nAllowed, nAfter atomic.Int64
			changed                atomic.Bool
			trigger                = make(chan struct{})
			changeErr              = make(chan error, 1)
		)
		go func() {
			<-trigger
			_, err := b.owner.Exec(context.Background(), change)
			changed.Store(true)
			changeErr <- err
		}()
		race(t, b.appPool(t, 16), 16, 60, func(ctx context.Context, c *pgxpool.Conn, _, _ int) error {
			started := changed.Load()
			v, err := tryCall(ctx, c, "consume", customer, "f", 1)
			if err != nil {
				return err
			}
			if v.Allowed {
				nAllowed.Add(1)
			}
			if started {
				nAfter.Add(1)
				if v.Plan != planAfter {
					return fmt.Errorf("a call after the change: %s", show(v))
				}
				if quotaAfter == nil && (v.Quota != nil || !v.Allowed) {
					return fmt.Errorf("a call after the change to unlimited: %s", show(v))
				}
				if quotaAfter != nil && v.Allowed && v.Used > *quotaAfter {
					return fmt.Errorf("a call after the change was allowed past the limit: %s", show(v))
				}
			}
			if done.Add(1) == changeAt {
				close(trigger)
			}
			return nil
		})
		require.NoError(t, <-changeErr)
		return nAllowed.Load(), nAfter.Load()
	}

	// free (200) to pro (unlimited) once 300 calls returned: blocked at 200,
	// then allowed again
	allowed, after := hammerWithChange("up", 300,
		`INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
		 VALUES ('sub_up', 'cus_up', 'active', '{price_pro}')`, "pro", nil)
	require.Positive(t, after, "the plan changed only after the run")
	require.Greater(t, allowed, int64(200))
	require.Equal(t, allowed, totalUsed(t, b, "up", "f"))
	require.Equal(t, "pro", call(t, b.owner, "check", "up", "f", 1).Plan)

	// pro (unlimited) to free (200) once 100 calls returned, so at most
	// 100 + 16 in flight were counted: the total ends exactly at 200
	allowed, after = hammerWithChange("down", 100,
		`UPDATE tollgate.subscriptions SET status = 'canceled' WHERE stripe_subscription = 'sub_down'`,
		"free", ptr[int64](200))
	require.Positive(t, after, "the plan changed only after the run")
	require.EqualValues(t, 200, allowed)
	require.EqualValues(t, 200, totalUsed(t, b, "down", "f"))
	v := call(t, b.owner, "check", "down", "f", 1)
	require.Equal(t, "free", v.Plan)
	require.False(t, v.Allowed)
	require.EqualValues(t, 200, v.Used)
	require.EqualValues(t, 1, events(t, b, "down", "limit_reached"))
	requireSlotInvariants(t, b, "down", "f", false)
}

// 7. A window closed while a slotted row's slots hold usage keeps all of it
// in usage_windows, and the new window starts from what it counts itself.
func TestSlotWindowRollover(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](1000))
	jan, feb, mar := utc("2027-01-10T12:00:00Z"), utc("2027-02-05T12:00:00Z"), utc("2027-03-03T12:00:00Z")
	owner := newPool(t, b.db.URL, 16, nil)
	hammerAt := func(when time.Time, clients, iters int) {
		var n atomic.Int64
		race(t, owner, clients, iters, func(ctx context.Context, c *pgxpool.Conn, _, _ int) error {
			v, err := tryAt(ctx, c, "consume", "c", "f", 1, when)
			if err != nil {
				return err
			}
			if !v.Allowed {
				return fmt.Errorf("blocked far below the quota: %s", show(v))
			}
			n.Add(1)
			return nil
		})
		require.EqualValues(t, clients*iters, n.Load())
	}

	require.True(t, at(t, b.owner, "consume", "c", "f", 1, jan).Allowed)
	forceSlotted(t, b, "c", "f")
	hammerAt(jan, 16, 20)
	require.EqualValues(t, 321, totalUsed(t, b, "c", "f"))
	require.EqualValues(t, 321, at(t, b.owner, "check", "c", "f", 1, jan).Used)
	requireSlotInvariants(t, b, "c", "f", true)
	t.Logf("January: slots %d hold %d", slotCount(t, b, "c", "f"),
		b.count(t, `SELECT coalesce(sum(used), 0)::bigint FROM tollgate.usage_slots`))

	v := at(t, b.owner, "consume", "c", "f", 1, feb)
	require.True(t, v.Allowed)
	require.EqualValues(t, 1, v.Used, "a new window starts from zero")
	require.EqualValues(t, 321, b.count(t, `SELECT used FROM tollgate.usage_windows
	                                        WHERE customer = 'c' AND feature = 'f' AND window_start = '2027-01-01T00:00:00Z'`))
	require.EqualValues(t, 321, at(t, b.owner, "check", "c", "f", 1, utc("2027-01-20T00:00:00Z")).Used)
	require.EqualValues(t, 1, totalUsed(t, b, "c", "f"))
	require.EqualValues(t, 1, at(t, b.owner, "check", "c", "f", 1, feb).Used)
	requireSlotInvariants(t, b, "c", "f", false)

	// February, slotted again, then March: nothing of January counts twice
	forceSlotted(t, b, "c", "f")
	hammerAt(feb, 16, 10)
	require.EqualValues(t, 161, totalUsed(t, b, "c", "f"))
	v = at(t, b.owner, "consume", "c", "f", 1, mar)
	require.EqualValues(t, 1, v.Used)
	require.EqualValues(t, 161, b.count(t, `SELECT used FROM tollgate.usage_windows
	                                        WHERE customer = 'c' AND feature = 'f' AND window_start = '2027-02-01T00:00:00Z'`))
	require.EqualValues(t, 321, b.count(t, `SELECT used FROM tollgate.usage_windows
	                                        WHERE customer = 'c' AND feature = 'f' AND window_start = '2027-01-01T00:00:00Z'`))
	require.EqualValues(t, 161, at(t, b.owner, "check", "c", "f", 1, utc("2027-02-20T00:00:00Z")).Used)
	require.EqualValues(t, 1, totalUsed(t, b, "c", "f"))
	requireSlotInvariants(t, b, "c", "f", false)
}

// 8. A row gate on a slotted key lets exactly the quota of rows in.
func TestSlotRowGate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.define_feature('projects', 'lifetime')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'projects', 3)`)
	b.exec(t, `SELECT tollgate.set_limit('pro', 'projects', NULL)`)
	b.exec(t, `CREATE TABLE projects (id serial PRIMARY KEY, owner_id integer, name text)`)
	b.exec(t, `GRANT ALL ON projects, projects_id_seq TO tollgate_test_app`)
	b.exec(t, `SELECT tollgate.attach_row_gate('projects', 'owner_id', 'projects')`)
	ctx := context.Background()
	app := b.db.Conn(t, b.db.AppURL)
	_, err := app.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (1)`)
	require.NoError(t, err)
	forceSlotted(t, b, "1", "projects")

	var inserted, refused atomic.Int64
	race(t, b.appPool(t, 8), 8, 3, func(ctx context.Context, c *pgxpool.Conn, _, _ int) error {
		_, err := c.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (1)`)
		switch {
		case err == nil:
			inserted.Add(1)
		case sqlstate(err) == "TG402":
			refused.Add(1)
		default:
			return err
		}
		return nil
	})
	require.EqualValues(t, 2, inserted.Load())
	require.EqualValues(t, 8*3-2, refused.Load())
	require.EqualValues(t, 3, b.count(t, `SELECT count(*) FROM projects WHERE owner_id = 1`))
	require.EqualValues(t, 3, totalUsed(t, b, "1", "projects"))
	require.EqualValues(t, 3, call(t, b.owner, "check", "1", "projects", 1).Used)

	// DELETE gives one back
	_, err = app.Exec(ctx, `DELETE FROM projects WHERE id = (SELECT min(id) FROM projects WHERE owner_id = 1)`)
	require.NoError(t, err)
	require.EqualValues(t, 2, totalUsed(t, b, "1", "projects"))
	_, err = app.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (1)`)
	require.NoError(t, err)
	_, err = app.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (1)`)
	requireCode(t, err, "TG402")
	require.EqualValues(t, 3, b.count(t, `SELECT count(*) FROM projects WHERE owner_id = 1`))
	require.EqualValues(t, 3, totalUsed(t, b, "1", "projects"))
	requireSlotInvariants(t, b, "1", "projects", false)
}

// 9. Contention on a hot row makes it slotted by itself.
func TestSlotAutomatic(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "month", "hard", []int32{100}, ptr[int64](1_000_000))
	require.True(t, call(t, b.owner, "consume", "hot", "api_calls", 1).Allowed)

	pool := newPool(t, b.db.AppURL, 32, map[string]string{"synchronous_commit": "on"})
	var s consumer
	race(t, pool, 32, 100, s.consume("hot", "api_calls"))
	require.EqualValues(t, 3200, s.allowed.Load())
	require.EqualValues(t, 3201, totalUsed(t, b, "hot", "api_calls"))
	slotted := b.count(t, `SELECT count(*) FROM tollgate.usage WHERE customer = 'hot' AND slotted`)
	slots := slotCount(t, b, "hot", "api_calls")
	t.Logf("slotted %d, slots %d", slotted, slots)
	require.True(t, slotted > 0 || slots > 0, "32 clients on one row never made it slotted")
	requireSlotInvariants(t, b, "hot", "api_calls", true)
}

// 10. A soft limit on a slotted row allows everything and writes each event once.
func TestSlotSoftLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "soft", []int32{80, 100}, ptr[int64](50))
	primeSlotted(t, b, "hot", "api_calls")

	var s consumer
	race(t, b.appPool(t, 32), 32, 300, s.consume("hot", "api_calls"))
	require.EqualValues(t, 32*300, s.allowed.Load())
	require.Zero(t, s.blocked.Load())
	v := call(t, b.owner, "check", "hot", "api_calls", 1)
	require.True(t, v.Allowed)
	require.EqualValues(t, 9600, v.Used)
	require.EqualValues(t, 0, *v.Remaining)
	require.NotNil(t, v.Message)
	require.EqualValues(t, 9600, totalUsed(t, b, "hot", "api_calls"))
	require.EqualValues(t, 1, events(t, b, "hot", "limit_reached"))
	require.EqualValues(t, 51, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'limit_reached'`))
	require.EqualValues(t, 2, events(t, b, "hot", "threshold"))
	require.EqualValues(t, 40, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = 80`))
	require.EqualValues(t, 50, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = 100`))
	requireSlotInvariants(t, b, "hot", "api_calls", false)
	t.Logf("slots: %d", slotCount(t, b, "hot", "api_calls"))
}

// 10b. The same with a quota large enough for the slots to hold leases.
func TestSlotSoftLimitWithLeases(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "soft", []int32{80, 100}, ptr[int64](5000))
	primeSlotted(t, b, "hot", "api_calls")

	var s consumer
	race(t, b.appPool(t, 32), 32, 300, s.consume("hot", "api_calls"))
	require.EqualValues(t, 32*300, s.allowed.Load())
	require.EqualValues(t, 9600, totalUsed(t, b, "hot", "api_calls"))
	require.EqualValues(t, 9600, call(t, b.owner, "check", "hot", "api_calls", 1).Used)
	require.EqualValues(t, 1, events(t, b, "hot", "limit_reached"))
	require.EqualValues(t, 5001, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'limit_reached'`))
	require.EqualValues(t, 2, events(t, b, "hot", "threshold"))
	require.EqualValues(t, 4000, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = 80`))
	require.EqualValues(t, 5000, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = 100`))
	require.Positive(t, slotCount(t, b, "hot", "api_calls"), "the slots were used")
	requireSlotInvariants(t, b, "hot", "api_calls", false)
}

// A slotted row whose contention is over becomes plain again: one connection
// calling on alone unslots it within a few hundred units, with nothing lost.
func TestSlotUnslotsWhenContentionEnds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](1_000_000))
	primeSlotted(t, b, "c", "f")

	app := b.db.Conn(t, b.db.AppURL)
	for i := 0; i < 300; i++ {
		require.True(t, call(t, app, "consume", "c", "f", 1).Allowed)
	}
	require.Positive(t, slotCount(t, b, "c", "f"), "the calls counted on slots")
	for i := 0; i < 300; i++ {
		require.True(t, call(t, app, "consume", "c", "f", 1).Allowed)
	}
	require.EqualValues(t, 0, b.count(t, `SELECT count(*) FROM tollgate.usage WHERE customer = 'c' AND slotted`))
	require.EqualValues(t, 0, b.count(t, `SELECT coalesce(sum(used + lease), 0) FROM tollgate.usage_slots WHERE customer = 'c'`))
	require.EqualValues(t, 600, b.count(t, `SELECT used FROM tollgate.usage WHERE customer = 'c'`))
	require.EqualValues(t, 600, call(t, b.owner, "check", "c", "f", 1).Used)
	requireSlotInvariants(t, b, "c", "f", true)
}
