// Package citus_test checks tollgate on a Citus cluster started on this machine (tests/citustest): a
// coordinator and two workers. Every test skips, with the reason, where Citus is not installed; run them
// with `make test-citus` (docs/scaling.md).
package citus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/tests/citustest"
)

func TestMain(m *testing.M) { citustest.Main(m) }

type bundle struct {
	db      *citustest.DB
	owner   *pgxpool.Pool
	app     *pgxpool.Pool
	sidecar *pgxpool.Pool
}

// setup gives a test a distributed database with plans free (the default) and pro (Stripe price price_pro),
// and the feature api: limit calls per 30 days on free, thresholds at 80% and 100%, the built-in upgrade
// prompt; 1000 on pro.
func setup(t *testing.T, limit int64) *bundle {
	t.Helper()
	db := citustest.NewDB(t)
	b := &bundle{db: db, owner: db.Pool(t), app: newPool(t, db.AppURL, 40), sidecar: newPool(t, db.SidecarURL, 8)}
	b.exec(t, `SELECT tollgate.define_plan('free', true)`)
	b.exec(t, `SELECT tollgate.define_plan('pro', false, '{price_pro}', 10)`)
	b.exec(t, `SELECT tollgate.define_feature('api', '30d', 'hard', '{80,100}', NULL, 'upgrade_prompt')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'api', $1)`, limit)
	b.exec(t, `SELECT tollgate.set_limit('pro', 'api', 1000)`)
	return b
}

func newPool(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func (b *bundle) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := b.owner.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

func (b *bundle) int(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, b.owner.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// consume calls tollgate.consume as the app, as its own statement (delegated to the customer's worker).
func (b *bundle) consume(t testing.TB, customer, feature string, amount int64) (allowed bool, used int64) {
	t.Helper()
	require.NoError(t, b.app.QueryRow(context.Background(),
		`SELECT allowed, used FROM tollgate.consume($1, $2, $3)`, customer, feature, amount).Scan(&allowed, &used))
	return allowed, used
}

// workerOf is the port of the worker that holds customer's rows.
func (b *bundle) workerOf(t testing.TB, customer string) int {
	t.Helper()
	return int(b.int(t, `
	  SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
	   WHERE p.shardid = get_shard_id_for_distribution_column('tollgate.customers', $1::text)`, customer))
}

// customersOnEachWorker returns n customer keys (prefix + number) held by each worker, worker by worker.
func (b *bundle) customersOnEachWorker(t testing.TB, prefix string, n int) map[int][]string {
	t.Helper()
	out := map[int][]string{}
	for i := 0; ; i++ {
		c := fmt.Sprintf("%s%d", prefix, i)
		w := b.workerOf(t, c)
		if len(out[w]) < n {
			out[w] = append(out[w], c)
		}
		full := len(out) == citustest.Workers
		for _, cs := range out {
			full = full && len(cs) == n
		}
		if full {
			return out
		}
		require.Less(t, i, 10000, "customers do not spread over the workers")
	}
}

// workerURL is the superuser URL of this database on the worker listening on port.
func (b *bundle) workerURL(t testing.TB, port int) string {
	t.Helper()
	for _, u := range b.db.WorkerURLs {
		cfg, err := pgx.ParseConfig(u)
		require.NoError(t, err)
		if int(cfg.Port) == port {
			return u
		}
	}
	t.Fatalf("no worker on port %d", port)
	return ""
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// eventually waits for cond, checking it until the deadline.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		<-tick.C
	}
}
