package sqlapi_test

// Helpers for tests that run many clients at once.

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

// newPool is a pool of n connections to connURL with the given settings.
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
	err := q.QueryRow(ctx, `SELECT `+verdictCols+` FROM tollgate._`+mode+`($1, $2, $3, $4)`,
		customer, feature, amount, when).
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

// events counts a customer's events of one kind.
func events(t testing.TB, b *bundle, customer, kind string) int64 {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM tollgate.events WHERE customer = $1 AND kind = $2`, customer, kind)
}
