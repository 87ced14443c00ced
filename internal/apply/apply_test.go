package apply

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const examplePath = "../../examples/tollgate.yaml"

type testBundle struct {
	db *pgtest.DB
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{db: pgtest.NewDB(t)}
}

// apply runs `tollgate apply` against the bundle's database as the owner and returns the exit status and
// output.
func (b *testBundle) apply(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), append(args, "--database-url", b.db.URL), &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

// dump is the configuration tables as text, to compare before and after.
func (b *testBundle) dump(t *testing.T) string {
	t.Helper()
	var s string
	err := b.db.Pool(t).QueryRow(t.Context(), `
		SELECT concat_ws(E'\n',
		  (SELECT string_agg(format('%s %s %s %s %s', plan, is_default, stripe_prices, stripe_products, rank), E'\n' ORDER BY plan) FROM tollgate.plans),
		  (SELECT string_agg(format('%s %s %s %s %s %s', feature, period, enforcement, notify_at, message, upgrade_prompt), E'\n' ORDER BY feature) FROM tollgate.features),
		  (SELECT string_agg(format('%s/%s %s', plan, feature, coalesce(quota::text, 'unlimited')), E'\n' ORDER BY plan, feature) FROM tollgate.limits),
		  (SELECT string_agg(format('%s %s %s %s', method, pattern, feature, amount), E'\n' ORDER BY method, pattern) FROM tollgate.routes),
		  (SELECT string_agg(format('%s %s', key, value), E'\n' ORDER BY key) FROM tollgate.settings))`).Scan(&s)
	require.NoError(t, err)
	return s
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tollgate.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// changeLines keeps the lines of the output that are changes (+, ~, - or =).
func changeLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if len(l) > 2 && strings.ContainsRune("+~-=", rune(l[0])) && l[1] == ' ' {
			lines = append(lines, l)
		}
	}
	return lines
}

func readExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(examplePath)
	require.NoError(t, err)
	return string(b)
}

// TestApplyExample is the acceptance test: the example applies to a fresh database, a new customer gets the free
// plan's quota, a customer with a pro subscription gets no quota, and a second apply has nothing to do.
func TestApplyExample(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, out, errOut := b.apply(t, examplePath)
	require.Equal(t, 0, code, errOut)
	require.Empty(t, errOut)
	require.Equal(t, []string{
		"+ plan free",
		"+ plan pro",
		"+ feature api_calls: period 30d",
		"+ feature projects: period lifetime",
		"+ feature sso: period lifetime",
		"+ variant api_calls/control: weight 50",
		`+ variant api_calls/short: weight 50, message "Out of API calls: upgrade in one click."`,
		"+ limit free/api_calls: 100",
		"+ limit free/projects: 3",
		"+ limit free/sso: 0",
		"+ limit pro/api_calls: unlimited",
		"+ limit pro/projects: 100",
		"+ limit pro/sso: unlimited",
		"+ route POST /api/features/*: feature api_calls",
		"+ topup calls_500: price_calls500: 500 api_calls, expires 365d",
		"+ setting attribution_window: 30 days",
		"+ setting past_due_is_grace: false",
		"+ setting pause_collection_keeps_plan: false",
		`+ setting trial_prompt: ""`,
	}, changeLines(out))
	require.True(t, strings.HasSuffix(out, "applied 19 changes\n"), out)

	ctx := t.Context()
	pool := b.db.Pool(t)
	var quota *int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT (tollgate.check('c1', 'api_calls')).quota").Scan(&quota))
	require.NotNil(t, quota)
	require.EqualValues(t, 100, *quota)

	_, err := pool.Exec(ctx, "SELECT tollgate.set_customer('c2', NULL, 'cus_2')")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, customer, status, price_ids)
		VALUES ('sub_2', 'cus_2', 'c2', 'active', '{price_pro_yearly}')`)
	require.NoError(t, err)
	var plan string
	require.NoError(t, pool.QueryRow(ctx, "SELECT (v).plan, (v).quota FROM tollgate.check('c2', 'api_calls') v").Scan(&plan, &quota))
	require.Equal(t, "pro", plan)
	require.Nil(t, quota, "pro is unlimited")

	var allowed bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT (tollgate.check('c1', 'sso')).allowed").Scan(&allowed))
	require.False(t, allowed, "sso is off on free")
	require.NoError(t, pool.QueryRow(ctx, "SELECT (tollgate.check('c2', 'sso')).allowed").Scan(&allowed))
	require.True(t, allowed, "sso is on on pro")

	code, out, errOut = b.apply(t, examplePath)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "no changes\n", out)
}

// TestApplyDryRunOneChange: changing one limit prints exactly that change; --dry-run leaves the database as it
// was, and the real run changes only that.
func TestApplyDryRunOneChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, _, errOut := b.apply(t, examplePath)
	require.Equal(t, 0, code, errOut)
	before := b.dump(t)

	changed := strings.Replace(readExample(t), "limits: { free: 100, pro: unlimited }", "limits: { free: 200, pro: unlimited }", 1)
	require.NotEqual(t, readExample(t), changed)
	path := writeFile(t, changed)

	code, out, errOut := b.apply(t, path, "--dry-run")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "~ limit free/api_calls: 100 -> 200\ndry run: 1 change, rolled back\n", out)
	require.Equal(t, before, b.dump(t))

	code, out, errOut = b.apply(t, path)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "~ limit free/api_calls: 100 -> 200\napplied 1 change\n", out)
	require.Equal(t, strings.Replace(before, "free/api_calls 100", "free/api_calls 200", 1), b.dump(t))
}

// TestApplyFiveMistakes: a file with five mistakes prints all five with their lines, exits 1 and writes nothing.
func TestApplyFiveMistakes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := b.dump(t)
	path := writeFile(t, `plans:
  free: { default: true }
  pro: { rank: high }
features:
  api_calls:
    period: weekly
    limits: { free: 100, gold: 5 }
    notify_at: [80, 180]
    routes: ["post /x"]
`)
	code, out, errOut := b.apply(t, path)
	require.Equal(t, 1, code)
	require.Empty(t, out)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	require.Len(t, lines, 6, errOut)
	for i, line := range []int{3, 6, 7, 8, 9} {
		require.Regexp(t, "^"+regexp.QuoteMeta(path)+":"+strconv.Itoa(line)+":[0-9]+: ", lines[i])
	}
	require.Contains(t, lines[5], "5 mistakes")
	require.Equal(t, before, b.dump(t))
}

// TestApplyPrune: what the file no longer names is kept and listed, and removed only with --prune; usage history
// stays.
func TestApplyPrune(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, _, errOut := b.apply(t, examplePath)
	require.Equal(t, 0, code, errOut)
	ctx := t.Context()
	pool := b.db.Pool(t)
	_, err := pool.Exec(ctx, "SELECT tollgate.consume('c1', 'projects')")
	require.NoError(t, err)

	path := writeFile(t, `
plans:
  basic: { default: true }
features:
  api_calls:
    period: month
    limits: { basic: 50 }
`)
	code, out, errOut := b.apply(t, path)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, []string{
		"+ plan basic",
		"~ plan free: default true -> false; kept (not in file; use --prune)",
		"~ feature api_calls: period 30d -> month, notify_at [80 100] -> [100], message \"You've reached your free tier limit. ...\" -> none, upgrade_prompt \"upgrade_prompt\" -> none",
		"+ limit basic/api_calls: 50",
		"= variant api_calls/control: kept (not in file; use --prune)",
		"= variant api_calls/short: kept (not in file; use --prune)",
		"= topup calls_500: kept (not in file; use --prune)",
		"= route POST /api/features/*: kept (not in file; use --prune)",
		"= feature projects: kept (not in file; use --prune)",
		"= feature sso: kept (not in file; use --prune)",
		"= plan pro: kept (not in file; use --prune)",
	}, changeLines(out))
	require.True(t, strings.HasSuffix(out, "applied 4 changes; 7 kept (not in file; use --prune)\n"), out)

	code, out, errOut = b.apply(t, path, "--prune")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, []string{
		"- topup calls_500",
		"- variant api_calls/control",
		"- variant api_calls/short",
		"- route POST /api/features/*",
		"- limit free/api_calls",
		"- limit free/projects",
		"- limit free/sso",
		"- limit pro/api_calls",
		"- limit pro/projects",
		"- limit pro/sso",
		"- feature projects",
		"- feature sso",
		"- plan free",
		"- plan pro",
	}, changeLines(out))
	require.Equal(t, "basic t {} {} 0\napi_calls month hard {100}  \nbasic/api_calls 50\nattribution_window 30 days\npast_due_is_grace false\npause_collection_keeps_plan false\ntrial_prompt ", b.dump(t))

	var used int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT sum(used) FROM tollgate.usage WHERE customer = 'c1' AND feature = 'projects'").Scan(&used))
	require.EqualValues(t, 1, used, "usage history is kept")

	code, out, errOut = b.apply(t, path, "--prune")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "no changes\n", out)
}

// TestApplyAsApp: the app's role cannot change the configuration; the error keeps its SQLSTATE.
func TestApplyAsApp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := mustConfig(t, readExample(t))
	conn := b.db.Conn(t, b.db.AppURL)
	_, err := Apply(t.Context(), conn, cfg, Options{}, &bytes.Buffer{})
	var pg *pgconn.PgError
	require.True(t, errors.As(err, &pg), "%v", err)
	require.Equal(t, "42501", pg.Code)

	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{examplePath, "--database-url", b.db.AppURL}, &out, &errOut, func(string) string { return "" })
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "SQLSTATE 42501")
	require.Contains(t, errOut.String(), "nothing written")
}

// TestApplyRollsBackOnError: when a write fails, the writes before it are rolled back.
func TestApplyRollsBackOnError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := b.dump(t)
	cfg := mustConfig(t, readExample(t))
	conn := b.db.Conn(t, b.db.URL)
	// a broken feature row makes the writes fail after the plans are written
	_, err := conn.Exec(t.Context(), "CREATE FUNCTION tollgate.fail() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION USING ERRCODE = 'TG499'; END$$")
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), "CREATE TRIGGER fail BEFORE INSERT ON tollgate.limits EXECUTE FUNCTION tollgate.fail()")
	require.NoError(t, err)
	res, err := Apply(t.Context(), conn, cfg, Options{}, &bytes.Buffer{})
	var pg *pgconn.PgError
	require.True(t, errors.As(err, &pg), "%v", err)
	require.Equal(t, "TG499", pg.Code)
	require.False(t, res.Committed)
	require.Equal(t, before, b.dump(t))
}

// TestApplyEnvURL: without --database-url, DATABASE_URL is used; without either, the exit status is 2.
func TestApplyEnvURL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"--dry-run", examplePath}, &out, &errOut, func(k string) string {
		if k == "DATABASE_URL" {
			return b.db.URL
		}
		return ""
	})
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "dry run: 19 changes, rolled back")

	out.Reset()
	errOut.Reset()
	code = run(t.Context(), []string{examplePath}, &out, &errOut, func(string) string { return "" })
	require.Equal(t, 2, code)
	require.Contains(t, errOut.String(), "DATABASE_URL")
}

func TestApplyUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"a.yaml", "b.yaml"}, {"--nope", "a.yaml"}} {
		var out, errOut bytes.Buffer
		require.Equal(t, 2, run(context.Background(), args, &out, &errOut, func(string) string { return "" }), args)
		require.Contains(t, errOut.String(), "usage: tollgate apply")
	}
	var out bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"--help"}, &out, &out, func(string) string { return "" }))
	require.Contains(t, out.String(), "--prune")

	var errOut bytes.Buffer
	require.Equal(t, 1, run(context.Background(), []string{filepath.Join(t.TempDir(), "missing.yaml")}, &out, &errOut, func(string) string { return "" }))
	require.Contains(t, errOut.String(), "no such file")
}

// TestApplyConcurrent: two applies at once both succeed; the second sees what the first wrote.
func TestApplyConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := mustConfig(t, readExample(t))
	c1 := b.db.Conn(t, b.db.URL)
	c2 := b.db.Conn(t, b.db.URL)
	tx, err := c1.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), lockSQL)
	require.NoError(t, err)

	done := make(chan Result, 1)
	errs := make(chan error, 1)
	go func() {
		res, err := Apply(context.Background(), c2, cfg, Options{}, &bytes.Buffer{})
		done <- res
		errs <- err
	}()
	// the second apply waits for the lock the first holds
	waitForLockWait(t, b)
	res1, err := Apply(t.Context(), tx, cfg, Options{}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 19, res1.Writes)
	require.NoError(t, tx.Commit(t.Context()))
	res2 := <-done
	require.NoError(t, <-errs)
	require.Equal(t, 0, res2.Writes)
}

// waitForLockWait blocks until some backend waits on an advisory lock in the test's database.
func waitForLockWait(t *testing.T, b *testBundle) {
	t.Helper()
	conn := b.db.Conn(t, b.db.URL)
	for {
		var waiting bool
		err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database())`).Scan(&waiting)
		require.NoError(t, err)
		if waiting {
			return
		}
	}
}

// TestApplyPastDueGrace: stripe.past_due_is_grace reaches the database, and customers with a past_due
// subscription move with it.
func TestApplyPastDueGrace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, _, errOut := b.apply(t, examplePath)
	require.Equal(t, 0, code, errOut)
	ctx := t.Context()
	pool := b.db.Pool(t)
	_, err := pool.Exec(ctx, "SELECT tollgate.set_customer('c3', NULL, 'cus_3')")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, customer, status, price_ids)
		VALUES ('sub_3', 'cus_3', 'c3', 'past_due', '{price_pro_monthly}')`)
	require.NoError(t, err)
	planOf := func() string {
		var plan string
		require.NoError(t, pool.QueryRow(ctx, "SELECT (tollgate.check('c3', 'api_calls')).plan").Scan(&plan))
		return plan
	}
	require.Equal(t, "free", planOf())

	path := writeFile(t, strings.Replace(readExample(t), "past_due_is_grace: false", "past_due_is_grace: true", 1))
	code, out, errOut := b.apply(t, path)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "~ setting past_due_is_grace: false -> true\napplied 1 change\n", out)
	require.Equal(t, "pro", planOf())
}

// Top-up packs: added, changed, kept and pruned like the rest, through define_topup and remove_topup.
func TestApplyTopups(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const base = `plans: { free: { default: true } }
features:
  api_calls: { period: month, limits: { free: 100 } }
  exports: { period: month, limits: { free: 5 } }
`
	code, out, errOut := b.apply(t, writeFile(t, base+`topups:
  calls_500: { stripe_price: price_calls500, feature: api_calls, amount: 500, expires: 365d }
  exports_10: { stripe_price: price_exports10, feature: exports, amount: 10, expires: 90m }
`))
	require.Equal(t, 0, code, errOut)
	require.Subset(t, changeLines(out), []string{
		"+ topup calls_500: price_calls500: 500 api_calls, expires 365d",
		"+ topup exports_10: price_exports10: 10 exports, expires 1h30m0s",
	})
	topups := func() string {
		var s string
		require.NoError(t, b.db.Pool(t).QueryRow(t.Context(), `SELECT coalesce(string_agg(format('%s %s %s %s %s',
			topup, stripe_price, feature, amount, coalesce(expires::text, 'never')), '; ' ORDER BY topup), '') FROM tollgate.topups`).Scan(&s))
		return s
	}
	require.Equal(t, "calls_500 price_calls500 api_calls 500 365 days; exports_10 price_exports10 exports 10 01:30:00", topups())

	// the same file again: nothing to do (the intervals compare as seconds)
	code, out, _ = b.apply(t, writeFile(t, base+`topups:
  calls_500: { stripe_price: price_calls500, feature: api_calls, amount: 500, expires: 365d }
  exports_10: { stripe_price: price_exports10, feature: exports, amount: 10, expires: 90m }
`))
	require.Equal(t, 0, code)
	require.Equal(t, "no changes\n", out)

	// changed, and one left out: kept unless --prune
	changed := writeFile(t, base+`topups:
  calls_500: { stripe_price: price_calls500b, feature: api_calls, amount: 600 }
`)
	code, out, errOut = b.apply(t, changed)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, []string{
		"~ topup calls_500: stripe_price price_calls500 -> price_calls500b, amount 500 -> 600, expires 365d -> never",
		"= topup exports_10: kept (not in file; use --prune)",
	}, changeLines(out))
	require.Equal(t, "calls_500 price_calls500b api_calls 600 never; exports_10 price_exports10 exports 10 01:30:00", topups())

	code, out, errOut = b.apply(t, changed, "--prune")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, []string{"- topup exports_10"}, changeLines(out))
	require.Equal(t, "calls_500 price_calls500b api_calls 600 never", topups())

	// a pack renamed: the file gives the old pack's price to the new one, so the old one goes first, also
	// without --prune (a price is one pack)
	code, out, errOut = b.apply(t, writeFile(t, base+`topups:
  api_500: { stripe_price: price_calls500b, feature: api_calls, amount: 600 }
`))
	require.Equal(t, 0, code, errOut)
	require.Equal(t, []string{
		"- topup calls_500: its price price_calls500b is now top-up api_500's",
		"+ topup api_500: price_calls500b: 600 api_calls, expires never",
	}, changeLines(out))
	require.Equal(t, "api_500 price_calls500b api_calls 600 never", topups())
}

// Prompt variants: added with their feature, changed, kept and pruned.
func TestApplyVariants(t *testing.T) {
	t.Parallel()
	b := setup(t)
	file := func(variants string) string {
		return writeFile(t, `plans: { free: { default: true } }
features:
  api_calls:
    period: month
    limits: { free: 100 }
    upgrade_prompt:
      email: upgrade_prompt
      variants: `+variants+`
`)
	}
	variants := func() string {
		var s string
		require.NoError(t, b.db.Pool(t).QueryRow(t.Context(), `SELECT coalesce(string_agg(format('%s/%s %s %s %s',
			feature, variant, weight, coalesce(message, '-'), coalesce(email, '-')), '; ' ORDER BY feature, variant), '') FROM tollgate.prompt_variants`).Scan(&s))
		return s
	}
	code, out, errOut := b.apply(t, file(`{ control: { weight: 50 }, short: { weight: 50, message: "Out of calls.", email: upgrade_prompt_short } }`))
	require.Equal(t, 0, code, errOut)
	require.Subset(t, changeLines(out), []string{
		"+ variant api_calls/control: weight 50",
		`+ variant api_calls/short: weight 50, message "Out of calls.", email upgrade_prompt_short`,
	})
	require.Equal(t, "api_calls/control 50 - -; api_calls/short 50 Out of calls. upgrade_prompt_short", variants())

	code, out, errOut = b.apply(t, file(`{ control: { weight: 80 } }`))
	require.Equal(t, 0, code, errOut)
	require.Equal(t, []string{
		"~ variant api_calls/control: weight 50 -> 80",
		"= variant api_calls/short: kept (not in file; use --prune)",
	}, changeLines(out))
	code, out, errOut = b.apply(t, file(`{ control: { weight: 80 } }`), "--prune")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, []string{"- variant api_calls/short"}, changeLines(out))
	require.Equal(t, "api_calls/control 80 - -", variants())
}
