package housekeeping_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/metrics"
	"github.com/tollgate/tollgate/sidecar/housekeeping"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type prune struct {
	n   int64
	err error
}

// The pruner deletes keys older than 24 hours at start and at every tick, as the sidecar's role, and counts
// them; the ticks come from the test, not the clock.
func TestPrunerPrunesAtStartAndEveryTick(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	owner := db.Pool(t)
	ctx := context.Background()
	_, err := owner.Exec(ctx, `SELECT tollgate.define_plan('free', true)`)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `SELECT tollgate.define_feature('f', 'month')`)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `SELECT tollgate.set_limit('free', 'f', 100)`)
	require.NoError(t, err)
	// keys through consume, then aged as the owner (the only one who may move tollgate's clock)
	keys := func(prefix string, n int, age string) {
		for i := range n {
			_, err := owner.Exec(ctx, `SELECT tollgate.consume('c', 'f', 1, $1)`, prefix+string(rune('a'+i)))
			require.NoError(t, err)
		}
		_, err := owner.Exec(ctx, `UPDATE tollgate.idempotency_keys SET created_at = now() - $2::interval WHERE key LIKE $1 || '%'`, prefix, age)
		require.NoError(t, err)
	}
	left := func() int {
		var n int
		require.NoError(t, owner.QueryRow(ctx, `SELECT count(*) FROM tollgate.idempotency_keys`).Scan(&n))
		return n
	}
	keys("old", 3, "25 hours")
	keys("fresh", 2, "23 hours")

	sidecar, err := pgxpool.New(ctx, db.SidecarURL)
	require.NoError(t, err)
	t.Cleanup(sidecar.Close)
	reg := metrics.NewRegistry()
	ticks := make(chan time.Time)
	done := make(chan prune, 10)
	p, err := housekeeping.NewPruner(housekeeping.Options{DB: sidecar, Ticks: ticks, Metrics: reg,
		OnPrune: func(n int64, err error) { done <- prune{n, err} }})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- p.Run(runCtx) }()

	require.Equal(t, prune{3, nil}, <-done, "the prune at start")
	require.Equal(t, 2, left())

	keys("later", 4, "2 days")
	ticks <- time.Now()
	require.Equal(t, prune{4, nil}, <-done, "the prune of the tick")
	require.Equal(t, 2, left())
	ticks <- time.Now()
	require.Equal(t, prune{0, nil}, <-done)

	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Contains(t, strings.Split(rec.Body.String(), "\n"), "tollgate_idempotency_keys_pruned_total 7")
	require.Equal(t, "idempotency-prune", p.Name())
	require.NoError(t, p.Ready(ctx))

	stop()
	require.NoError(t, <-stopped)
}

// A failed prune (the database refuses) is counted and reported, and the next tick tries again.
func TestPrunerRetriesAfterAFailure(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	ctx := context.Background()
	app, err := pgxpool.New(ctx, db.AppURL) // the app's role may not prune: 42501 each time
	require.NoError(t, err)
	t.Cleanup(app.Close)
	reg := metrics.NewRegistry()
	ticks := make(chan time.Time)
	done := make(chan prune, 10)
	p, err := housekeeping.NewPruner(housekeeping.Options{DB: app, Ticks: ticks, Metrics: reg,
		OnPrune: func(n int64, err error) { done <- prune{n, err} }})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- p.Run(runCtx) }()
	first := <-done
	require.Error(t, first.err)
	ticks <- time.Now()
	second := <-done
	require.Error(t, second.err)
	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Contains(t, strings.Split(rec.Body.String(), "\n"), "tollgate_idempotency_prune_errors_total 2")
	stop()
	require.NoError(t, <-stopped)
	require.False(t, errors.Is(first.err, context.Canceled))
}
