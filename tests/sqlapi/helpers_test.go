package sqlapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// verdict mirrors tollgate.verdict.
type verdict struct {
	Allowed   bool
	Customer  string
	Feature   string
	Plan      string
	Used      int64
	Quota     *int64
	Remaining *int64
	ResetsAt  *time.Time
	Message   *string
}

const verdictCols = `allowed, customer, feature, plan, used, quota, remaining, resets_at, message`

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func scanVerdict(t testing.TB, row pgx.Row) verdict {
	t.Helper()
	var v verdict
	require.NoError(t, row.Scan(&v.Allowed, &v.Customer, &v.Feature, &v.Plan, &v.Used, &v.Quota, &v.Remaining, &v.ResetsAt, &v.Message))
	return v
}

// call runs one of the public verdict functions (consume, check, require, refund).
func call(t testing.TB, q querier, fn, customer, feature string, amount int64) verdict {
	t.Helper()
	return scanVerdict(t, q.QueryRow(context.Background(),
		`SELECT `+verdictCols+` FROM tollgate.`+fn+`($1, $2, $3)`, customer, feature, amount))
}

// at runs consume, check, refund or note (note_blocked) at a given time
// through their internal forms (tollgate._consume, ...), as the owner: the
// only way to move tollgate's clock, and out of reach of tollgate_app.
func at(t testing.TB, q querier, mode, customer, feature string, amount int64, when time.Time) verdict {
	t.Helper()
	return scanVerdict(t, q.QueryRow(context.Background(),
		`SELECT `+verdictCols+` FROM tollgate._`+mode+`($1, $2, $3, $4)`, customer, feature, amount, when))
}

// sqlstate returns the SQLSTATE of err, or "" when it is not a server error.
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

type bundle struct {
	db    *pgtest.DB
	owner *pgxpool.Pool
}

// setup gives each test its own migrated database with a free plan (default)
// and a pro plan sold as price_pro.
func setup(t *testing.T) *bundle {
	t.Helper()
	db := pgtest.NewDB(t)
	b := &bundle{db: db, owner: db.Pool(t)}
	b.exec(t, `SELECT tollgate.define_plan('free', true)`)
	b.exec(t, `SELECT tollgate.define_plan('pro', false, '{price_pro}', 10)`)
	return b
}

func (b *bundle) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := b.owner.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

// feature defines a feature with the free quota given (nil = unlimited) and
// unlimited on pro.
func (b *bundle) feature(t testing.TB, name, period, enforcement string, notify []int32, freeQuota *int64) {
	t.Helper()
	b.exec(t, `SELECT tollgate.define_feature($1, $2, $3, $4)`, name, period, enforcement, notify)
	b.exec(t, `SELECT tollgate.set_limit('free', $1, $2)`, name, freeQuota)
	b.exec(t, `SELECT tollgate.set_limit('pro', $1, NULL)`, name)
}

func (b *bundle) count(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, b.owner.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// appPool connects as a login role that is a member of tollgate_app only.
func (b *bundle) appPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(b.db.AppURL)
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func ptr[T any](v T) *T { return &v }
