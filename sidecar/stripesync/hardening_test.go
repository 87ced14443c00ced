package stripesync_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// goodArgs are arguments each sidecar function accepts, as SQL; a function the sidecar may call that is not
// here fails TestSidecarFunctionsRejectBadArguments, so a new function gets covered.
var goodArgs = map[string][]string{
	"record_stripe_event":           {"'evt_1'", "'customer.subscription.updated'", "'2023-10-16'", "'sub_1'", "now()"},
	"stripe_event_seen":             {"'evt_1'"},
	"link_checkout_session":         {"'cs_test_1'", "'cus_1'", "'carol'"},
	"sync_subscription":             {"'sub_1'", "'cus_1'", "'active'", "'{price_pro_monthly}'", "'{prod_pro}'", "now() - interval '1 day'", "now() + interval '29 days'", "false", "now() - interval '1 day'", "now()", "'carol'", "'acct_1'", "'void'", "now() + interval '1 day'", "now() - interval '10 days'", "now() + interval '1 day'", "false"},
	"stripe_subscription_gone":      {"'sub_1'", "now()"},
	"stripe_customer_subscriptions": {"'cus_1'"},
	"stripe_due_resumes":            {"10"},
	"trial_will_end":                {"'sub_1'"},
	"start_sync_run":                {},
	"finish_sync_run":               {"1", "0", "NULL"},
	"last_sync_run":                 {},
	"outbox_collect":                {"10"},
	"outbox_register":               {"'worker_1'"},
	"outbox_claim":                  {"'worker_1'", "1", "interval '5 minutes'"},
	"outbox_begin":                  {"1", "1", "'log'", "'a@b.test'", "'s'", "'t'", "'h'"},
	"outbox_sent":                   {"1", "'log'", "'x'"},
	"outbox_failed":                 {"1", "1", "'e'", "interval '1 minute'", "false", "8"},
	"outbox_counts":                 {},
	"funnel":                        {"now() - interval '1 day'", "now()"},
	"trial_funnel":                  {"now() - interval '1 day'", "now()"},
	"unmapped_subscriptions":        {},
	"set_email_opt_out":             {"'carol'", "true"}, // the app's, in sql/email_opt_out.sql
	"record_topup":                  {"'in_1'", "'carol'", "'{price_calls50}'", "'{1}'"},
	"record_stripe_topup":           {"'in_1'", "'cus_1'", "'carol'", "'carol'", "'{price_calls50}'", "'{1}'"},
	"topup_prices":                  {},
	"prune_idempotency_keys":        {"interval '2 days'"},
	"waiting_topups":                {},
	"configure_upgrade_links":       {"'" + strings.Repeat("ab", 32) + "'", "'https://billing.example.test'", "interval '30 days'"},
	"disable_upgrade_links":         {},
	"experiments":                   {},
	"experiment_results":            {"'api_calls'", "now() - interval '1 day'", "now()"},
	"experiment_timeline":           {"'api_calls'", "now() - interval '1 day'", "now()", "interval '1 hour'"},
	"record_click":                  {"'carol'", "'api_calls'", "1", "NULL", "'control'", "'" + strings.Repeat("0f", 32) + "'"},
	"record_click_target":           {"1", "'checkout'", "'cs_test_1'"},
	"record_checkout_click":         {"'cs_test_1'", "1", "'carol'"},
}

// badArgs are the arguments of each type that must never surface a SQLSTATE outside class TG: NULL, empty and
// over-long texts, negative and extreme numbers, infinite and epoch times, huge intervals, arrays with NULL,
// huge or too many elements, or two dimensions.
var badArgs = map[string][]string{
	"text":                     {"NULL::text", "''", "repeat('x', 256)", "repeat('x', 100000)", "E'evt_1\\n'", "'sub_1/../x'"},
	"bigint":                   {"NULL::bigint", "(-1)::bigint", "0::bigint", "9223372036854775807::bigint", "(-9223372036854775808)::bigint"},
	"integer":                  {"NULL::integer", "(-1)::integer", "0", "2147483647", "(-2147483648)::integer"},
	"timestamp with time zone": {"NULL::timestamptz", "'infinity'::timestamptz", "'-infinity'::timestamptz", "'epoch'::timestamptz", "'294276-12-31 23:59:59+00'::timestamptz", "'4713-01-01 BC'::timestamptz"},
	"interval":                 {"NULL::interval", "interval '-1 day'", "interval '0'", "interval '178000000 years'", "interval '-178000000 years'"},
	"boolean":                  {"NULL::boolean"},
	"text[]":                   {"NULL::text[]", "'{NULL}'::text[]", "ARRAY[repeat('x', 100000)]", "array_fill('p'::text, ARRAY[2000])", "'{{a},{b}}'::text[]", "'{\"\"}'::text[]"},
	"bigint[]":                 {"NULL::bigint[]", "'{NULL}'::bigint[]", "'{-1}'::bigint[]", "'{0}'::bigint[]", "'{9223372036854775807}'::bigint[]", "array_fill(1::bigint, ARRAY[2000])", "'{{1},{2}}'::bigint[]"},
}

// Every function the sidecar may call (and the app's set_email_opt_out), fed bad arguments one position at a
// time with good ones elsewhere, answers or raises a TG SQLSTATE: never 22003, 22008, 54000, 2202E, ... The
// database holds rows the functions find (a customer, subscriptions, an event, an email), so the checks are
// reached with state to change.
func TestSidecarFunctionsRejectBadArguments(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.exec(t, `SELECT tollgate.define_feature('api_calls', 'month', upgrade_prompt => 'upgrade_prompt')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'api_calls', 1)`)
	b.exec(t, `SELECT tollgate.set_customer('carol', 'carol@example.test', 'cus_1')`)
	b.exec(t, `SELECT tollgate.set_setting('trial_prompt', 'trial_ending')`)
	b.exec(t, `SELECT tollgate.define_topup('calls_50', 'price_calls50', 'api_calls', 50)`)
	b.exec(t, `SELECT * FROM tollgate.consume('carol', 'api_calls', 2)`)
	for _, stmt := range []string{
		`SELECT tollgate.record_stripe_event('evt_1', 'x')`,
		`SELECT * FROM tollgate.sync_subscription('sub_1', 'cus_1', 'trialing', '{price_pro_monthly}', '{}', NULL, NULL, false,
			NULL, now(), trial_start => now() - interval '1 day', trial_end => now() + interval '1 day', has_payment_method => false)`,
		`SELECT tollgate.outbox_collect(10)`,
		`SELECT * FROM tollgate.outbox_claim('worker_0', 1)`, // an email being sent, by another worker
	} {
		_, err := b.sidecar.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}

	type fn struct {
		name  string
		types []string
		app   bool
	}
	rows, err := b.owner.Query(ctx, `
		SELECT p.proname, array(SELECT format_type(a, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(a, i) ORDER BY i),
		       NOT has_function_privilege('tollgate_sidecar', p.oid, 'EXECUTE')
		  FROM pg_proc p
		 WHERE p.pronamespace = 'tollgate'::regnamespace
		   AND (has_function_privilege('tollgate_sidecar', p.oid, 'EXECUTE') OR p.proname = 'set_email_opt_out')
		 ORDER BY p.proname`)
	require.NoError(t, err)
	fns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (f fn, err error) {
		err = r.Scan(&f.name, &f.types, &f.app)
		return f, err
	})
	require.NoError(t, err)
	require.Len(t, fns, len(goodArgs), "goodArgs names functions the sidecar cannot call, or misses some")

	app := b.db.Conn(t, b.db.AppURL)
	calls := 0
	for _, f := range fns {
		good, ok := goodArgs[f.name]
		require.True(t, ok, "add arguments for tollgate.%s to goodArgs", f.name)
		require.Len(t, good, len(f.types), "tollgate.%s takes %v", f.name, f.types)
		conn := b.db.Conn(t, b.db.SidecarURL)
		if f.app {
			conn = app
		}
		for i, typ := range f.types {
			bad, ok := badArgs[typ]
			require.True(t, ok, "add bad values of type %s (tollgate.%s)", typ, f.name)
			for _, v := range bad {
				args := append([]string(nil), good...)
				args[i] = v
				stmt := fmt.Sprintf("SELECT * FROM tollgate.%s(%s)", f.name, strings.Join(args, ", "))
				calls++
				tx, err := conn.Begin(ctx)
				require.NoError(t, err)
				_, err = tx.Exec(ctx, stmt)
				var pgErr *pgconn.PgError
				if err != nil {
					require.True(t, errors.As(err, &pgErr), "%s: %v", stmt, err)
					require.True(t, strings.HasPrefix(pgErr.Code, "TG4"), "%s: SQLSTATE %s: %s", truncateSQL(stmt), pgErr.Code, pgErr.Message)
				}
				require.NoError(t, tx.Rollback(ctx))
			}
		}
	}
	require.Greater(t, calls, 300)
}

func truncateSQL(s string) string {
	s = strings.ReplaceAll(s, "repeat('x', 100000)", "repeat('x', 100000)")
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}
