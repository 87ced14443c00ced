package sqlapi_test

// Every function that tollgate_app or tollgate_sidecar may call, found in the
// catalog (so a new function is covered without touching this test), is fed
// NULL, empty, over-long, negative and largest-value arguments, one argument
// at a time. Each call must answer (a verdict or other result) or raise a
// TG4xx SQLSTATE; no other SQLSTATE may reach the caller, and a call that
// fails must leave no trace: no table changed, no advisory lock held.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// badValues are SQL expressions of each argument type, bad or at the edge.
var badValues = map[string][]string{
	"text":                     {"NULL", "''", "repeat('x', 256)", "repeat('x', 3000)", "repeat('é', 100000)"},
	"bigint":                   {"NULL", "0", "-1", "9223372036854775807", "-9223372036854775808"},
	"integer":                  {"NULL", "0", "-1", "2147483647", "-2147483648"},
	"boolean":                  {"NULL"},
	"timestamp with time zone": {"NULL", "'infinity'", "'-infinity'", "'4713-01-01 BC'", "'294276-12-31'"},
	"interval":                 {"NULL", "'-1 hour'", "'0'", "'178000000 years'"},
	"text[]":                   {"NULL", "'{}'", "'{NULL}'", "ARRAY[repeat('x', 3000)]", "ARRAY[''::text]"},
	"bigint[]":                 {"NULL", "'{}'", "'{NULL}'", "'{-1}'", "'{9223372036854775807}'"},
	"integer[]":                {"NULL", "'{}'", "'{NULL}'", "'{-1}'"},
	"regclass":                 {"NULL"},
	"name":                     {"NULL", "''", "repeat('x', 63)"},
}

// goodText is a plausible value of a text argument, by its name.
func goodText(arg string) string {
	switch {
	case strings.Contains(arg, "email"):
		return "'a@example.test'"
	case arg == "stripe_customer":
		return "'cus_Test1'"
	case arg == "stripe_subscription" || arg == "object_id":
		return "'sub_Test1'"
	case arg == "stripe_checkout_session":
		return "'cs_test_1'"
	case arg == "status":
		return "'active'"
	case arg == "id":
		return "'evt_Test1'"
	case arg == "type":
		return "'customer.subscription.updated'"
	case arg == "api_version":
		return "'2023-10-16'"
	case arg == "feature":
		return "'f'"
	case arg == "provider":
		return "'log'"
	default:
		return "'c1'"
	}
}

// goodValue is a plausible value of an argument, by its type and name.
func goodValue(typ, arg string) string {
	switch typ {
	case "text":
		return goodText(arg)
	case "bigint", "integer":
		return "1"
	case "boolean":
		return "false"
	case "timestamp with time zone":
		return "now()"
	case "interval":
		return "'1 hour'"
	case "text[]":
		return "ARRAY[" + goodText(strings.TrimSuffix(arg, "s")) + "]"
	case "bigint[]", "integer[]":
		return "'{1}'"
	case "regclass":
		return "'pg_temp.gated'"
	case "name":
		return "'owner_id'"
	}
	return "NULL"
}

func TestEveryCallableFunctionAnswersBadInputWithTGCodes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{50, 100}, ptr[int64](5))
	ctx := context.Background()
	// what a failed call must not change: every tollgate table, as text
	b.exec(t, `
		CREATE FUNCTION public.tollgate_state() RETURNS text LANGUAGE plpgsql AS $$
		DECLARE r record; s text := ''; v text;
		BEGIN
		  FOR r IN SELECT c.oid::regclass AS t FROM pg_class c
		            WHERE c.relnamespace = 'tollgate'::regnamespace AND c.relkind = 'r' ORDER BY 1 LOOP
		    EXECUTE format('SELECT coalesce(md5(string_agg(x::text, '','' ORDER BY x::text)), '''') FROM %s x', r.t) INTO v;
		    s := s || r.t || '=' || v || ' ';
		  END LOOP;
		  RETURN s;
		END $$`)
	state := func() string {
		var s string
		require.NoError(t, b.owner.QueryRow(ctx, `SELECT public.tollgate_state()`).Scan(&s))
		return s
	}

	type fn struct {
		name, role string
		args       []string // argument names
		types      []string
	}
	rows, err := b.owner.Query(ctx, `
		SELECT p.oid::regproc::text,
		       CASE WHEN has_function_privilege('tollgate_app', p.oid, 'EXECUTE') THEN 'app' ELSE 'sidecar' END,
		       coalesce(p.proargnames[1:p.pronargs], '{}'),
		       coalesce(ARRAY(SELECT format_type(a, NULL) FROM unnest(p.proargtypes) WITH ORDINALITY u(a, i) ORDER BY i), '{}')
		  FROM pg_proc p
		 WHERE p.pronamespace = 'tollgate'::regnamespace AND p.prorettype <> 'trigger'::regtype
		   AND (has_function_privilege('tollgate_app', p.oid, 'EXECUTE')
		        OR has_function_privilege('tollgate_sidecar', p.oid, 'EXECUTE'))
		 ORDER BY 1`)
	require.NoError(t, err)
	var fns []fn
	var f fn
	_, err = pgx.ForEachRow(rows, []any{&f.name, &f.role, &f.args, &f.types}, func() error {
		fns = append(fns, fn{f.name, f.role, append([]string(nil), f.args...), append([]string(nil), f.types...)})
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, len(fns), 20)

	conns := map[string]*pgx.Conn{"app": b.db.Conn(t, b.db.AppURL), "sidecar": b.db.Conn(t, b.db.SidecarURL)}
	_, err = conns["app"].Exec(ctx, `CREATE TEMP TABLE gated (owner_id text)`)
	require.NoError(t, err)

	var failures []string
	calls := 0
	for _, fn := range fns {
		// one bad argument at a time, the others plausible; then all NULL
		var argLists [][]string
		good := make([]string, len(fn.types))
		for i, typ := range fn.types {
			require.Contains(t, badValues, typ, "%s: add bad values of type %s to this test", fn.name, typ)
			good[i] = goodValue(typ, fn.args[i])
		}
		for i, typ := range fn.types {
			for _, bad := range badValues[typ] {
				args := append([]string(nil), good...)
				args[i] = bad
				argLists = append(argLists, args)
			}
		}
		nulls := make([]string, len(fn.types))
		for i := range nulls {
			nulls[i] = "NULL"
		}
		argLists = append(argLists, good, nulls)

		conn := conns[fn.role]
		for _, args := range argLists {
			typed := make([]string, len(args))
			for i, a := range args {
				typed[i] = "(" + a + ")::" + fn.types[i]
			}
			stmt := fmt.Sprintf("SELECT * FROM %s(%s)", fn.name, strings.Join(typed, ", "))
			before, locksBefore := state(), advisoryLocks(t, conn)
			_, err := conn.Exec(ctx, stmt)
			calls++
			if err == nil {
				continue
			}
			if code := sqlstate(err); !strings.HasPrefix(code, "TG4") {
				failures = append(failures, fmt.Sprintf("%s: SQLSTATE %s: %v", stmt, code, err))
				continue
			}
			if after := state(); after != before {
				failures = append(failures, fmt.Sprintf("%s: failed with %s but changed tables", stmt, sqlstate(err)))
			}
			if locks := advisoryLocks(t, conn); locks != locksBefore {
				failures = append(failures, fmt.Sprintf("%s: failed with %s but took an advisory lock", stmt, sqlstate(err)))
			}
		}
	}
	require.Empty(t, failures, "%d of %d calls", len(failures), calls)
}

// advisoryLocks lists the advisory locks conn's session holds.
func advisoryLocks(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var s string
	require.NoError(t, conn.QueryRow(context.Background(), `
		SELECT coalesce(string_agg(objid::text, ',' ORDER BY objid), '')
		  FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'`).Scan(&s))
	return s
}

// The largest amount, on every kind of feature and customer: a hard limit
// answers blocked (TG402 from require), soft and unlimited ones count or
// refuse with TG422, and nothing ever overflows (22003).
func TestLargestAmountsGetAVerdictOrATGCode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "hard", "month", "hard", []int32{50, 100}, ptr[int64](100))
	b.feature(t, "soft", "month", "soft", []int32{50, 100}, ptr[int64](100))
	b.feature(t, "unlimited", "month", "hard", []int32{100}, nil)
	b.feature(t, "rolling", "rolling 7d", "hard", []int32{100}, ptr[int64](100))
	b.feature(t, "rolling_soft", "rolling 7d", "soft", []int32{100}, ptr[int64](100))
	b.feature(t, "huge", "month", "soft", []int32{1, 50, 100}, ptr[int64](9223372036854775807))
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	const max = int64(9223372036854775807)
	for _, feature := range []string{"hard", "soft", "unlimited", "rolling", "rolling_soft", "huge"} {
		for _, customer := range []string{"fresh_" + feature, "used_" + feature} {
			if strings.HasPrefix(customer, "used") {
				call(t, app, "consume", customer, feature, 60)
			}
			for _, fn := range []string{"check", "consume", "require", "refund", "note_blocked", "consume"} {
				_, err := tryCall(ctx, app, fn, customer, feature, max)
				if err == nil {
					continue
				}
				code := sqlstate(err)
				require.Contains(t, []string{"TG402", "TG422"}, code, "%s(%s, %s, max): %v", fn, customer, feature, err)
				if code == "TG402" {
					require.Equal(t, "require", fn)
				}
			}
			// a hard limit blocks the largest amount, and it counts nothing
			if feature == "hard" || feature == "rolling" {
				v := call(t, app, "consume", customer, feature, max)
				require.False(t, v.Allowed)
				require.Less(t, v.Used, int64(100))
			}
		}
	}
	// a count that reached the largest bigint stays there and refuses more
	v := call(t, app, "check", "used_huge", "huge", 1)
	require.True(t, v.Allowed)
	_, err := tryCall(ctx, app, "consume", "used_huge", "huge", max)
	requireCode(t, err, "TG422")
}

// Names past their documented maximum are refused up front with TG422, in
// consume and set_customer alike (they would not fit an index).
func TestOverlongNamesAreRefusedUpFront(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	long := strings.Repeat("k", 256)
	for _, stmt := range []string{
		`SELECT tollgate.consume('` + long + `', 'f')`,
		`SELECT tollgate.check('` + long + `', 'f')`,
		`SELECT tollgate.refund('` + long + `', 'f')`,
		`SELECT tollgate.consume('c', '` + strings.Repeat("f", 64) + `')`,
		`SELECT tollgate.set_customer('` + long + `')`,
		`SELECT tollgate.set_customer('c', '` + strings.Repeat("e", 320) + `@x.test')`,
		`SELECT tollgate.set_customer('c', NULL, 'cus_` + strings.Repeat("A", 252) + `')`,
		`SELECT * FROM tollgate.usage('` + long + `')`,
	} {
		_, err := app.Exec(ctx, stmt)
		requireCode(t, err, "TG422")
	}
	// the maxima themselves are fine
	key := strings.Repeat("k", 255)
	require.True(t, call(t, app, "consume", key, "f", 1).Allowed)
	_, err := app.Exec(ctx, `SELECT tollgate.set_customer($1, $2, $3)`, key,
		strings.Repeat("e", 307)+"@example.test", "cus_"+strings.Repeat("A", 251))
	require.NoError(t, err)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.customers WHERE customer = 'c'`))
}
