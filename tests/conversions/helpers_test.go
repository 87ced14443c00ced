// Package conversions_test tests plan changes, their attribution to upgrade prompts and tollgate.funnel, through
// the functions the app (consume), the mailer (outbox_collect, outbox_sent) and the Stripe sync
// (sync_subscription) call, each as its own role.
package conversions_test

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

	"github.com/tollgate/tollgate/internal/funnel"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type testBundle struct {
	db      *pgtest.DB
	owner   *pgxpool.Pool
	app     *pgx.Conn
	sidecar *pgx.Conn
}

// setup: plans free (default), pro (price_pro) and team (price_team); features api and export, 2 calls a month on
// free with an upgrade prompt, unlimited on the paid plans.
func setup(t *testing.T) *testBundle {
	t.Helper()
	db := pgtest.NewDB(t)
	b := &testBundle{db: db, owner: db.Pool(t), app: db.Conn(t, db.AppURL), sidecar: db.Conn(t, db.SidecarURL)}
	b.exec(t, `SELECT tollgate.define_plan('free', true)`)
	b.exec(t, `SELECT tollgate.define_plan('pro', false, '{price_pro}', 10)`)
	b.exec(t, `SELECT tollgate.define_plan('team', false, '{price_team}', 20)`)
	for _, f := range []string{"api", "export"} {
		b.exec(t, `SELECT tollgate.define_feature($1, 'month', upgrade_prompt => 'upgrade_prompt')`, f)
		b.exec(t, `SELECT tollgate.set_limit('free', $1, 2)`, f)
		b.exec(t, `SELECT tollgate.set_limit('pro', $1, NULL)`, f)
		b.exec(t, `SELECT tollgate.set_limit('team', $1, NULL)`, f)
	}
	return b
}

func (b *testBundle) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := b.owner.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

func (b *testBundle) count(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, b.owner.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// customer registers customer with an email address and a Stripe customer id cus_<customer>, as the app does.
func (b *testBundle) customer(t testing.TB, customer string) {
	t.Helper()
	_, err := b.app.Exec(context.Background(), `SELECT tollgate.set_customer($1, $2, $3)`,
		customer, customer+"@example.test", "cus_"+customer)
	require.NoError(t, err)
}

// hitLimit makes customer use feature up to its free limit and be blocked once (a limit_reached event), as
// the app does.
func (b *testBundle) hitLimit(t testing.TB, customer, feature string) {
	t.Helper()
	var allowed bool
	for range 3 {
		require.NoError(t, b.app.QueryRow(context.Background(),
			`SELECT allowed FROM tollgate.consume($1, $2)`, customer, feature).Scan(&allowed))
	}
	require.False(t, allowed)
}

// prompt turns new events into emails and marks customer's pending ones sent, as the mailer does; it returns
// the ids of the emails sent.
func (b *testBundle) prompt(t testing.TB, customer string) []int64 {
	t.Helper()
	ctx := context.Background()
	_, err := b.sidecar.Exec(ctx, `SELECT tollgate.outbox_collect()`)
	require.NoError(t, err)
	rows, err := b.owner.Query(ctx, `SELECT id FROM tollgate.emails WHERE customer = $1 AND status = 'pending' ORDER BY id`, customer)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	for _, id := range ids {
		_, err := b.sidecar.Exec(ctx, `SELECT tollgate.outbox_sent($1, 'log', $2)`, id, fmt.Sprintf("msg-%d", id))
		require.NoError(t, err)
	}
	return ids
}

// subscribe stores subscription sub of customer (Stripe customer cus_<customer>) with a status and one price,
// as the Stripe sync does after a webhook: a fresh fetch each call.
func (b *testBundle) subscribe(t testing.TB, customer, sub, status, price string) {
	t.Helper()
	var applied bool
	require.NoError(t, b.sidecar.QueryRow(context.Background(),
		`SELECT applied FROM tollgate.sync_subscription($1, $2, $3, ARRAY[$4], '{}', NULL, NULL, false, NULL, clock_timestamp())`,
		sub, "cus_"+customer, status, price).Scan(&applied))
	require.True(t, applied)
}

type change struct {
	Customer, From, To, Kind string
	EmailID, EventID         *int64
	Feature                  *string
	PromptedAt               *time.Time
}

func (b *testBundle) changes(t testing.TB, customer string) []change {
	t.Helper()
	rows, err := b.owner.Query(context.Background(), `
		SELECT customer, from_plan, to_plan, kind, email_id, event_id, feature, prompted_at
		  FROM tollgate.plan_changes WHERE customer = $1 ORDER BY id`, customer)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (change, error) {
		var c change
		err := row.Scan(&c.Customer, &c.From, &c.To, &c.Kind, &c.EmailID, &c.EventID, &c.Feature, &c.PromptedAt)
		return c, err
	})
	require.NoError(t, err)
	return out
}

// eventOf is the event of an email.
func (b *testBundle) eventOf(t testing.TB, email int64) int64 {
	t.Helper()
	return b.count(t, `SELECT event_id FROM tollgate.emails WHERE id = $1`, email)
}

// funnel reads tollgate.funnel over the last day as the sidecar, keyed by feature ("(total)" for the total row).
func (b *testBundle) funnel(t testing.TB) map[string]funnel.Row {
	t.Helper()
	ctx := context.Background()
	var now time.Time
	require.NoError(t, b.owner.QueryRow(ctx, `SELECT now()`).Scan(&now))
	return b.funnelRange(t, now.Add(-24*time.Hour), now.Add(time.Hour))
}

func (b *testBundle) funnelRange(t testing.TB, since, until time.Time) map[string]funnel.Row {
	t.Helper()
	rows, err := funnel.Query(context.Background(), b.sidecar, since, until)
	require.NoError(t, err)
	out := map[string]funnel.Row{}
	for _, r := range rows {
		out[r.Name()] = r
	}
	require.Contains(t, out, "(total)")
	return out
}

func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func requireCode(t testing.TB, err error, code string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, sqlstate(err), "error: %v", err)
}

func ptr[T any](v T) *T { return &v }
