package citus_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/citus"
)

// After tollgate migrate --citus every table is where internal/citus.Tables places it, the per-customer ones
// co-located with customers, and the app's functions are delegated by their customer argument.
func TestTablesAndFunctionsArePlaced(t *testing.T) {
	t.Parallel()
	b := setup(t, 5)
	ctx := context.Background()
	colocation := b.int(t, `SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'tollgate.customers'::regclass`)
	for _, tb := range citus.Tables {
		var method, repmodel *string
		var coloc *int64
		err := b.owner.QueryRow(ctx, `
		  SELECT p.partmethod::text, p.repmodel::text, p.colocationid::bigint FROM pg_class c
		    LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid WHERE c.oid = ('tollgate.' || $1)::regclass`, tb.Name).
			Scan(&method, &repmodel, &coloc)
		require.NoError(t, err, tb.Name)
		switch tb.Placement {
		case citus.Distributed:
			require.Equal(t, "h", *method, tb.Name)
			require.Equal(t, colocation, *coloc, "tollgate.%s is co-located with customers", tb.Name)
			require.Equal(t, "customer", b.colname(t, tb.Name))
		case citus.Reference:
			require.Equal(t, "n", *method, tb.Name)
			require.Equal(t, "t", *repmodel, tb.Name)
		case citus.Coordinator:
			require.Nil(t, method, "tollgate.%s stays a plain table on the coordinator", tb.Name)
		}
	}
	for _, fn := range citus.Delegated {
		var arg, customerArg int
		require.NoError(t, b.owner.QueryRow(ctx, `
		  SELECT o.distribution_argument_index, pg_catalog.array_position(p.proargnames, 'customer') - 1
		    FROM pg_dist_object o JOIN pg_proc p ON p.oid = o.objid
		   WHERE o.classid = 'pg_proc'::regclass AND p.pronamespace = 'tollgate'::regnamespace AND p.proname = $1
		     AND o.colocationid = $2`, fn, colocation).Scan(&arg, &customerArg), fn)
		require.Equal(t, customerArg, arg, "tollgate.%s is delegated by its argument customer", fn)
	}
	// every function of the schema exists on every worker
	n := b.int(t, `SELECT count(*) FROM pg_proc WHERE pronamespace = 'tollgate'::regnamespace`)
	for _, u := range b.db.WorkerURLs {
		w := b.db.Conn(t, u)
		var m int64
		require.NoError(t, w.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE pronamespace = 'tollgate'::regnamespace`).Scan(&m))
		require.Equal(t, n, m, u)
	}

	// A second migrate finds everything placed and changes nothing.
	conn := b.db.Conn(t, b.db.URL)
	_, err := citus.Migrate(ctx, conn, nil, nil, nil)
	require.NoError(t, err)
	res, err := citus.Apply(ctx, conn, nil)
	require.NoError(t, err)
	require.Empty(t, res.Placed)
	require.Zero(t, res.Functions)
}

func (b *bundle) colname(t testing.TB, table string) string {
	t.Helper()
	var col string
	require.NoError(t, b.owner.QueryRow(context.Background(),
		`SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition WHERE logicalrelid = ('tollgate.' || $1)::regclass`,
		table).Scan(&col))
	return col
}

// The security rules hold on every node: no tollgate function is executable by PUBLIC, and each role may
// execute exactly what it may on the coordinator; the app's role reads no table anywhere.
func TestPrivilegesAreTheSameOnEveryNode(t *testing.T) {
	t.Parallel()
	b := setup(t, 5)
	const privileges = `
	  SELECT coalesce(string_agg(f, E'\n' ORDER BY f), '') FROM (
	    SELECT p.oid::regprocedure::text || ' public=' || has_function_privilege('public', p.oid, 'EXECUTE')
	           || ' app=' || has_function_privilege('tollgate_app', p.oid, 'EXECUTE')
	           || ' sidecar=' || has_function_privilege('tollgate_sidecar', p.oid, 'EXECUTE') AS f
	      FROM pg_proc p WHERE p.pronamespace = 'tollgate'::regnamespace
	    UNION ALL
	    SELECT 'table ' || c.oid::regclass::text || ' app=' || has_table_privilege('tollgate_app', c.oid, 'SELECT,INSERT,UPDATE,DELETE')
	      FROM pg_class c WHERE c.relnamespace = 'tollgate'::regnamespace AND c.relkind IN ('r', 'p', 'v')) x`
	var want string
	require.NoError(t, b.owner.QueryRow(context.Background(), privileges).Scan(&want))
	require.NotContains(t, want, "public=true")
	lines := strings.Split(want, "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "table ") {
			require.True(t, strings.HasSuffix(l, " app=false"), l)
		}
	}
	// the coordinator's own tables are only there
	lines = slices.DeleteFunc(lines, func(l string) bool {
		for _, tb := range citus.Tables {
			if tb.Placement == citus.Coordinator && strings.HasPrefix(l, "table tollgate."+tb.Name+" ") {
				return true
			}
		}
		return false
	})
	want = strings.Join(lines, "\n")
	for _, u := range b.db.WorkerURLs {
		var got string
		require.NoError(t, b.db.Conn(t, u).QueryRow(context.Background(), privileges).Scan(&got))
		require.Equal(t, want, got, "privileges on %s", u)
	}
}

// A call about one customer is sent whole to that customer's worker and runs there: the coordinator never
// runs the function (its statistics count no call), the customer's worker does. Inside an explicit
// transaction block Citus does not delegate (the function then runs on the coordinator, one statement
// per shard access), which the same statistics show.
func TestCallsAreDelegatedToTheCustomersWorker(t *testing.T) {
	t.Parallel()
	b := setup(t, 100)
	ctx := context.Background()
	byWorker := b.customersOnEachWorker(t, "deleg", 3)
	app := b.db.Conn(t, b.db.AppURL)

	calls := func(conn *pgx.Conn, fn string) int64 {
		var n int64
		require.NoError(t, conn.QueryRow(ctx, `
		  SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE schemaname = 'tollgate' AND funcname = $1`, fn).Scan(&n))
		return n
	}
	coordinator := b.db.Conn(t, b.db.URL)
	workers := map[int]*pgx.Conn{}
	before := map[int]int64{}
	for port := range byWorker {
		workers[port] = b.db.Conn(t, b.workerURL(t, port))
		before[port] = calls(workers[port], "_consume")
	}
	// as the app does it: one statement per call, as pgx sends it and as the Django helper writes it
	for _, cs := range byWorker {
		for _, c := range cs {
			for range 4 {
				var allowed bool
				require.NoError(t, app.QueryRow(ctx, `SELECT allowed FROM tollgate.consume($1, 'api')`, c).Scan(&allowed))
				require.True(t, allowed)
			}
			_, err := app.Exec(ctx, `SELECT allowed, customer, feature, plan, used, quota, remaining, resets_at, message
			                          FROM tollgate.check('`+c+`'::text, 'api'::text, 1::bigint)`)
			require.NoError(t, err)
		}
	}
	// the app's session flushes its statistics: had it run tollgate._consume, the coordinator would count it
	_, err := app.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
	require.NoError(t, err)
	_, err = app.Exec(ctx, `SELECT 1`)
	require.NoError(t, err)
	require.Zero(t, calls(coordinator, "_consume"), "the coordinator ran tollgate._consume")
	require.Zero(t, calls(coordinator, "_check"), "the coordinator ran tollgate._check")
	for port, cs := range byWorker {
		want := before[port] + int64(4*len(cs))
		eventually(t, 30*time.Second, fmt.Sprintf("worker %d to count %d calls of _consume", port, want), func() bool {
			return calls(workers[port], "_consume") == want
		})
	}

	// the control: in a transaction block the coordinator runs the function
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT allowed FROM tollgate.consume($1, 'api')`, byWorker[firstKey(byWorker)][0])
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	_, err = app.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
	require.NoError(t, err)
	_, err = app.Exec(ctx, `SELECT 1`)
	require.NoError(t, err)
	require.EqualValues(t, 1, calls(coordinator, "_consume"))

	// every customer's usage is where it was counted
	for _, cs := range byWorker {
		for _, c := range cs {
			require.EqualValues(t, 4+boolInt(c == byWorker[firstKey(byWorker)][0]),
				b.int(t, `SELECT used FROM tollgate.usage WHERE customer = $1 AND feature = 'api'`, c))
		}
	}
}

func firstKey(m map[int][]string) int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys[0]
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// The calls of one customer touch that customer's shards alone, on every path (first call, hot path,
// blocked, refund, check, note_blocked, usage, unlimited and rolling features): the app's role is made
// to fail any statement that would need more than one shard.
func TestCustomerCallsStayOnOneShard(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	ctx := context.Background()
	b.exec(t, `SELECT tollgate.define_feature('unlimited', 'month')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'unlimited', NULL)`)
	b.exec(t, `SELECT tollgate.define_feature('rolling', 'rolling 7d', 'hard', '{50,100}')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'rolling', 2)`)
	b.exec(t, `SELECT tollgate.define_feature('soft', 'month', 'soft', '{100}')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'soft', 1)`)
	// on every node: Citus connects to a worker as the session's user, and the delegated call runs there
	for _, u := range append([]string{b.db.URL}, b.db.WorkerURLs...) {
		_, err := b.db.Conn(t, u).Exec(ctx, `ALTER ROLE tollgate_test_app IN DATABASE `+pgx.Identifier{b.db.Name}.Sanitize()+
			` SET citus.multi_task_query_log_level = error`)
		require.NoError(t, err, u)
	}
	app := newPool(t, b.db.AppURL, 4)
	one := func(sql string, args ...any) {
		t.Helper()
		_, err := app.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	for _, c := range []string{"shard-a", "shard-b", "shard-c", "shard-d"} {
		for range 5 {
			one(`SELECT * FROM tollgate.consume($1, 'api')`, c)
			one(`SELECT * FROM tollgate.consume($1, 'unlimited', 2)`, c)
			one(`SELECT * FROM tollgate.consume($1, 'rolling')`, c)
			one(`SELECT * FROM tollgate.consume($1, 'soft')`, c)
		}
		one(`SELECT * FROM tollgate.check($1, 'api')`, c)
		one(`SELECT * FROM tollgate.refund($1, 'api')`, c)
		one(`SELECT * FROM tollgate.refund($1, 'unlimited')`, c)
		one(`SELECT * FROM tollgate.refund($1, 'rolling')`, c)
		one(`SELECT * FROM tollgate.note_blocked($1, 'api', 3)`, c)
		one(`SELECT * FROM tollgate.usage($1)`, c)
		one(`SELECT tollgate.set_email_opt_out($1, true)`, c)
		_, err := app.Exec(ctx, `SELECT * FROM tollgate.require($1, 'rolling', 2)`, c)
		require.Equal(t, "TG402", sqlstate(err))
		// and inside a transaction block, where the coordinator runs the function statement by statement
		tx, err := app.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `SELECT * FROM tollgate.consume($1, 'unlimited')`, c)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `SELECT * FROM tollgate.check($1, 'rolling')`, c)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
	}
	// the setting does fail a statement over several shards: set_row_counts reads every customer's usage
	_, err := app.Exec(ctx, `SELECT tollgate.set_row_counts('api', '{}', '{}')`)
	require.Equal(t, "XX000", sqlstate(err), "citus.multi_task_query_log_level = error is in force: %v", err)
}

// Limits are exact under 32 connections at once, spread over customers on both workers, half of them in
// explicit transactions (run by the coordinator), half as single statements (delegated): every customer gets
// exactly its quota, its usage row says so, and its 80% and limit events are written once each.
func TestLimitsAreExactUnder32Connections(t *testing.T) {
	t.Parallel()
	const limit = 40
	b := setup(t, limit)
	ctx := context.Background()
	byWorker := b.customersOnEachWorker(t, "exact", 4)
	var customers []string
	for _, cs := range byWorker {
		customers = append(customers, cs...)
	}
	allowed := map[string]*atomic.Int64{}
	for _, c := range customers {
		allowed[c] = &atomic.Int64{}
	}
	const conns = 32
	const attempts = 3 * limit // per customer, in all
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := make(chan struct{})
	for i := range conns {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, b.db.AppURL)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(context.Background())
			<-start
			// each connection calls for every customer, in an order of its own
			for k := range attempts * len(customers) / conns {
				c := customers[(i+k*7)%len(customers)]
				var ok bool
				if i%2 == 0 {
					err = conn.QueryRow(ctx, `SELECT allowed FROM tollgate.consume($1, 'api')`, c).Scan(&ok)
				} else {
					err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
						return tx.QueryRow(ctx, `SELECT allowed FROM tollgate.consume($1, 'api')`, c).Scan(&ok)
					})
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d, %s: %w", i, c, err)
					return
				}
				if ok {
					allowed[c].Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, c := range customers {
		require.EqualValues(t, limit, allowed[c].Load(), "calls allowed for %s", c)
		require.EqualValues(t, limit, b.int(t, `SELECT used FROM tollgate.usage WHERE customer = $1 AND feature = 'api'`, c), c)
		require.EqualValues(t, 1, b.int(t, `SELECT count(*) FROM tollgate.events WHERE customer = $1 AND kind = 'limit_reached'`, c), c)
		require.EqualValues(t, 1, b.int(t, `SELECT count(*) FROM tollgate.events WHERE customer = $1 AND kind = 'threshold' AND threshold = 80`, c), c)
		require.EqualValues(t, 1, b.int(t, `SELECT count(*) FROM tollgate.events WHERE customer = $1 AND kind = 'threshold' AND threshold = 100`, c), c)
	}
	// every event id is unique across the cluster (each node draws ids from a range of its own)
	require.EqualValues(t, b.int(t, `SELECT count(*) FROM tollgate.events`), b.int(t, `SELECT count(DISTINCT id) FROM tollgate.events`))
}

// A rollback gives the usage back and drops the events, on both paths; errors keep their SQLSTATE across
// the delegation.
func TestRollbackAndErrorsAcrossTheCluster(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	ctx := context.Background()
	app := b.db.Conn(t, b.db.AppURL)

	// a transaction that counts to the limit (events included), then rolls back
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	for range 3 {
		_, err = tx.Exec(ctx, `SELECT tollgate.consume('rb', 'api')`)
		require.NoError(t, err)
	}
	_, err = tx.Exec(ctx, `SELECT tollgate.require('rb', 'api')`)
	require.Equal(t, "TG402", sqlstate(err))
	require.NoError(t, tx.Rollback(ctx))
	require.Zero(t, b.int(t, `SELECT count(*) FROM tollgate.usage WHERE customer = 'rb'`))
	require.Zero(t, b.int(t, `SELECT count(*) FROM tollgate.events WHERE customer = 'rb'`))
	require.Zero(t, b.int(t, `SELECT count(*) FROM tollgate.customers WHERE customer = 'rb'`))

	// delegated: the same calls as single statements count, and require's TG402 comes back from the worker
	for range 3 {
		ok, _ := b.consume(t, "rb", "api", 1)
		require.True(t, ok)
	}
	_, err = app.Exec(ctx, `SELECT * FROM tollgate.require('rb', 'api')`)
	require.Equal(t, "TG402", sqlstate(err))
	_, err = app.Exec(ctx, `SELECT * FROM tollgate.consume('rb', 'nope')`)
	require.Equal(t, "TG404", sqlstate(err))
	_, err = app.Exec(ctx, `SELECT * FROM tollgate.consume('rb', 'api', -1)`)
	require.Equal(t, "TG422", sqlstate(err))
	_, err = app.Exec(ctx, `SELECT * FROM tollgate.consume('', 'api')`)
	require.Equal(t, "TG422", sqlstate(err))
	// the blocked require rolled back its own limit event; note_blocked records it, once
	require.Zero(t, b.int(t, `SELECT count(*) FROM tollgate.events WHERE customer = 'rb' AND kind = 'limit_reached'`))
	for range 2 {
		_, err = app.Exec(ctx, `SELECT * FROM tollgate.note_blocked('rb', 'api')`)
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, b.int(t, `SELECT count(*) FROM tollgate.events WHERE customer = 'rb' AND kind = 'limit_reached'`))
	// a refund inside a transaction that rolls back gives nothing back
	tx, err = app.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT tollgate.refund('rb', 'api', 2)`)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	require.EqualValues(t, 3, b.int(t, `SELECT used FROM tollgate.usage WHERE customer = 'rb'`))
}

// A configuration change reaches every node's copy, and the next delegated call decides with it.
func TestConfigChangeReachesEveryNode(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	ctx := context.Background()
	versions := func() []int64 {
		var v []int64
		rows, err := b.owner.Query(ctx, `SELECT result::bigint FROM run_command_on_all_nodes('SELECT version FROM tollgate.config_state') ORDER BY nodeid`)
		require.NoError(t, err)
		v, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		return v
	}
	v := versions()
	require.Len(t, v, 1+2)
	require.Equal(t, v[0], v[1])
	require.Equal(t, v[0], v[2])

	for range 2 {
		ok, _ := b.consume(t, "cfg", "api", 1)
		require.True(t, ok)
	}
	ok, _ := b.consume(t, "cfg", "api", 1)
	require.False(t, ok)
	b.exec(t, `SELECT tollgate.set_limit('free', 'api', 4)`)
	after := versions()
	require.Greater(t, after[0], v[0])
	require.Equal(t, after[0], after[1])
	require.Equal(t, after[0], after[2])
	ok, used := b.consume(t, "cfg", "api", 1)
	require.True(t, ok)
	require.EqualValues(t, 3, used)
	// by hand, as an operator might: the trigger on every copy bumps every copy
	b.exec(t, `UPDATE tollgate.limits SET quota = 3 WHERE plan = 'free' AND feature = 'api'`)
	again := versions()
	require.Greater(t, again[0], after[0])
	require.Equal(t, again[0], again[1])
	require.Equal(t, again[0], again[2])
	ok, _ = b.consume(t, "cfg", "api", 1)
	require.False(t, ok)
}

// A Stripe customer belongs to one customer at a time on a cluster too (the unique key cannot exist there),
// also when two links race.
func TestStripeCustomerBelongsToOneCustomer(t *testing.T) {
	t.Parallel()
	b := setup(t, 5)
	ctx := context.Background()
	_, err := b.app.Exec(ctx, `SELECT tollgate.set_customer('alice', 'alice@example.com', 'cus_Alice')`)
	require.NoError(t, err)
	_, err = b.app.Exec(ctx, `SELECT tollgate.set_customer('bob', 'bob@example.com', 'cus_Alice')`)
	require.Equal(t, "TG422", sqlstate(err))
	_, err = b.app.Exec(ctx, `SELECT tollgate.set_customer('alice', 'alice2@example.com', 'cus_Alice')`)
	require.NoError(t, err)

	for round := range 5 {
		stripe := fmt.Sprintf("cus_Race%d", round)
		var wg sync.WaitGroup
		results := make([]error, 4)
		for i := range results {
			wg.Go(func() {
				_, results[i] = b.app.Exec(ctx, `SELECT tollgate.set_customer($1, NULL, $2)`, fmt.Sprintf("racer%d-%d", round, i), stripe)
			})
		}
		wg.Wait()
		won := 0
		for _, err := range results {
			if err == nil {
				won++
			} else {
				require.Equal(t, "TG422", sqlstate(err))
			}
		}
		require.Equal(t, 1, won)
		require.EqualValues(t, 1, b.int(t, `SELECT count(*) FROM tollgate.customers WHERE stripe_customer = $1`, stripe))
	}
}
