package sqlapi_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestAppRoleHasNoTablePrivileges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// every table with its first column
	rows, err := b.owner.Query(ctx, `
		SELECT c.relname, a.attname
		  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
		 WHERE c.relnamespace = 'tollgate'::regnamespace AND c.relkind = 'r' ORDER BY 1`)
	require.NoError(t, err)
	tables := map[string]string{}
	var tbl, col string
	_, err = pgx.ForEachRow(rows, []any{&tbl, &col}, func() error { tables[tbl] = col; return nil })
	require.NoError(t, err)
	require.Contains(t, tables, "usage")
	require.Contains(t, tables, "events")

	app := b.db.Conn(t, b.db.AppURL)
	for tbl, col := range tables {
		for _, stmt := range []string{
			`SELECT * FROM tollgate.%[1]s`,
			`INSERT INTO tollgate.%[1]s DEFAULT VALUES`,
			`UPDATE tollgate.%[1]s SET %[2]s = DEFAULT`,
			`DELETE FROM tollgate.%[1]s`,
			`TRUNCATE tollgate.%[1]s`,
		} {
			_, err := app.Exec(ctx, fmt.Sprintf(stmt, tbl, col))
			requireCode(t, err, "42501")
		}
	}
}

func TestAppRoleCannotCallOwnerFunctions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](1))
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	for _, stmt := range []string{
		`SELECT tollgate.define_plan('x', true)`,
		`SELECT tollgate.define_feature('g', 'month')`,
		`SELECT tollgate.set_limit('free', 'f', NULL)`,
		`SELECT tollgate.remove_plan('pro')`,
		`SELECT tollgate.remove_feature('f')`,
		`SELECT tollgate.remove_limit('free', 'f')`,
		`SELECT tollgate.define_route('GET', '/x', 'f')`,
		`SELECT tollgate.set_setting('past_due_is_grace', 'true')`,
		`SELECT tollgate._consume('c', 'f', 1, now() + interval '1 year')`,
		`SELECT tollgate._refund('c', 'f', 1, now())`,
		`SELECT tollgate._check('c', 'f', 1, now() - interval '1 year')`,
		`SELECT tollgate.set_setting('attribution_window', '1 day')`,
		`SELECT tollgate._refresh_customer('c')`,
	} {
		_, err := app.Exec(ctx, stmt)
		requireCode(t, err, "42501")
	}
	// and they can call what they are meant to
	for _, stmt := range []string{
		`SELECT tollgate.consume('c', 'f')`,
		`SELECT tollgate.check('c', 'f')`,
		`SELECT tollgate.refund('c', 'f')`,
		`SELECT * FROM tollgate.usage('c')`,
		`SELECT tollgate.set_customer('c', 'c@example.test')`,
		`SELECT * FROM tollgate.routes()`,
	} {
		_, err := app.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
}

func TestBadInputGetsTGCodes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](1))
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	for stmt, code := range map[string]string{
		`SELECT tollgate.consume(NULL, 'f')`:             "TG422",
		`SELECT tollgate.consume('', 'f')`:               "TG422",
		`SELECT tollgate.consume('c', NULL)`:             "TG422",
		`SELECT tollgate.consume('c', 'f', 0)`:           "TG422",
		`SELECT tollgate.consume('c', 'f', -5)`:          "TG422",
		`SELECT tollgate.consume('c', 'f', NULL)`:        "TG422",
		`SELECT tollgate.check('c', 'f', -1)`:            "TG422",
		`SELECT tollgate.refund('c', 'f', 0)`:            "TG422",
		`SELECT tollgate.require('c', 'f', 0)`:           "TG422",
		`SELECT tollgate.consume('c', 'nope')`:           "TG404",
		`SELECT tollgate.check('c', 'nope')`:             "TG404",
		`SELECT tollgate.set_customer('')`:               "TG422",
		`SELECT tollgate.set_customer('c', 'not-email')`: "TG422",
		`SELECT tollgate.set_customer('c', NULL, 'x')`:   "TG422",
		`SELECT * FROM tollgate.usage('')`:               "TG422",
	} {
		_, err := app.Exec(ctx, stmt)
		requireCode(t, err, code)
	}
	// nothing was half-written by any of them
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.customers`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.usage`))
}

func TestConfigurationValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, period := range []string{"month", "billing", "lifetime", "7d", "12h", "rolling 30d"} {
		b.exec(t, `SELECT tollgate.define_feature('f', $1)`, period)
	}
	for stmt, code := range map[string]string{
		`SELECT tollgate.define_feature('f', '')`:                       "TG422",
		`SELECT tollgate.define_feature('f', '0d')`:                     "TG422",
		`SELECT tollgate.define_feature('f', 'week')`:                   "TG422",
		`SELECT tollgate.define_feature('f', 'rolling 5h')`:             "TG422",
		`SELECT tollgate.define_feature('f', '30 d')`:                   "TG422",
		`SELECT tollgate.define_feature('f', NULL)`:                     "TG422",
		`SELECT tollgate.define_feature('F', 'month')`:                  "TG422",
		`SELECT tollgate.define_feature('f', 'month', 'maybe')`:         "TG422",
		`SELECT tollgate.define_feature('f', 'month', 'hard', '{0}')`:   "TG422",
		`SELECT tollgate.define_feature('f', 'month', 'hard', '{101}')`: "TG422",
		`SELECT tollgate.set_limit('gold', 'f', 1)`:                     "TG404",
		`SELECT tollgate.set_limit('free', 'g', 1)`:                     "TG404",
		`SELECT tollgate.set_limit('free', 'f', -1)`:                    "TG422",
		`SELECT tollgate.define_plan('Bad Name')`:                       "TG422",
		`SELECT tollgate.define_plan('free', false)`:                    "TG422",
		`SELECT tollgate.remove_plan('free')`:                           "TG422",
		`SELECT tollgate.define_route('FETCH', '/x', 'f')`:              "TG422",
		`SELECT tollgate.define_route('GET', 'x', 'f')`:                 "TG422",
		`SELECT tollgate.define_route('GET', '/a*b', 'f')`:              "TG422",
		`SELECT tollgate.define_route('GET', '/x', 'g')`:                "TG404",
		`SELECT tollgate.set_setting('nope', 'true')`:                   "TG422",
		`SELECT tollgate.set_setting('past_due_is_grace', 'yes')`:       "TG422",
		`SELECT tollgate.set_setting('attribution_window', 'soon')`:     "TG422",
		`SELECT tollgate.set_setting('attribution_window', '-1 day')`:   "TG422",
		`SELECT tollgate.set_setting('attribution_window', NULL)`:       "TG422",
	} {
		_, err := b.owner.Exec(ctx, stmt)
		requireCode(t, err, code)
	}
	// a new default plan takes the flag from the old one: exactly one default
	b.exec(t, `SELECT tollgate.define_plan('basic', true)`)
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.plans WHERE is_default`))
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.plans WHERE is_default AND plan = 'basic'`))
	b.exec(t, `SELECT tollgate.remove_plan('free')`)
	b.exec(t, `SELECT tollgate.set_setting('attribution_window', '7 days')`)
	require.EqualValues(t, 7*24*3600, b.count(t,
		`SELECT extract(epoch FROM value::interval)::bigint FROM tollgate.settings WHERE key = 'attribution_window'`))
}

func TestDefinerFunctionsPinSearchPath(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	rows, err := b.owner.Query(ctx, `
		SELECT p.oid::regprocedure::text, p.prosecdef, coalesce(p.proconfig[1], '') -- settings after the pinned path (a report's work_mem) are fine
		  FROM pg_proc p
		 WHERE p.pronamespace = 'tollgate'::regnamespace
		   AND (has_function_privilege('tollgate_app', p.oid, 'EXECUTE') OR p.prosecdef)`)
	require.NoError(t, err)
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name, config string
		var definer bool
		require.NoError(t, rows.Scan(&name, &definer, &config))
		n++
		switch name {
		case "tollgate.attach_row_gate(regclass,name,text)", "tollgate.detach_row_gate(regclass,text)", "tollgate._row_gate()":
			// run with the caller's rights on purpose (see their comments)
			require.False(t, definer, name)
			require.Equal(t, "search_path=pg_catalog, pg_temp", config, name)
			continue
		}
		require.True(t, definer, "%s must be SECURITY DEFINER", name)
		require.Equal(t, "search_path=tollgate, pg_temp", config, name)
	}
	require.NoError(t, rows.Err())
	require.Greater(t, n, 10)
}

func TestTempObjectsCannotShadowInternals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](2))
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()
	for _, stmt := range []string{
		`CREATE TEMP TABLE usage (customer text, feature text, window_start timestamptz, used bigint, limit_hit boolean)`,
		`CREATE TEMP TABLE features (feature text, period_unit text)`,
		`CREATE TEMP TABLE limits (plan text, feature text, quota bigint)`,
		`CREATE TEMP TABLE customers (customer text)`,
		`INSERT INTO pg_temp.limits VALUES ('free', 'f', NULL)`,
	} {
		_, err := app.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	require.True(t, call(t, app, "consume", "c", "f", 1).Allowed)
	require.True(t, call(t, app, "consume", "c", "f", 1).Allowed)
	require.False(t, call(t, app, "consume", "c", "f", 1).Allowed)
	require.EqualValues(t, 2, b.count(t, `SELECT used FROM tollgate.usage WHERE customer = 'c'`))
}

// Code that runs as the owner never touches a value of a type the caller
// could define: every SECURITY DEFINER function takes and returns only
// built-in types (or tollgate's own), never a polymorphic or pseudo type.
func TestDefinerFunctionsTakeOnlyBuiltInTypes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rows, err := b.owner.Query(context.Background(), `
		SELECT p.oid::regprocedure::text, format_type(t.oid, NULL), t.typnamespace::regnamespace::text, t.typtype
		  FROM pg_proc p
		 -- every argument, OUT arguments included; the return type unless it is the record of OUT arguments
		 CROSS JOIN LATERAL unnest(p.proargtypes::oid[] || coalesce(p.proallargtypes, '{}')
		                           || CASE WHEN p.proallargtypes IS NULL THEN p.prorettype END) a(oid)
		  JOIN pg_type t ON t.oid = a.oid
		 WHERE p.pronamespace = 'tollgate'::regnamespace AND p.prosecdef`)
	require.NoError(t, err)
	n := 0
	var fn, typ, ns, kind string
	_, err = pgx.ForEachRow(rows, []any{&fn, &typ, &ns, &kind}, func() error {
		n++
		require.Contains(t, []string{"pg_catalog", "tollgate"}, ns, "%s takes %s", fn, typ)
		if ns == "pg_catalog" {
			require.True(t, kind != "p" || typ == "void", "%s takes the pseudo type %s", fn, typ)
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, n, 30)
}
