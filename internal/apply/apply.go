package apply

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/config"
)

// Options change what Apply does.
type Options struct {
	// DryRun computes and prints the changes, makes them, and rolls back: the output is what a real run
	// would print, and the database is left as it was.
	DryRun bool
	// Prune removes the plans, features, limits, routes, prompt variants and top-up packs that the file does not
	// name. Usage history is
	// kept. Without it they are kept and listed.
	Prune bool
}

// Result is what Apply did.
type Result struct {
	Changes []Change
	// Writes counts the changes that wrote (or, in a dry run, would write) something.
	Writes int
	// Committed is true when the changes were committed (not a dry run, and at least one write).
	Committed bool
}

// Beginner starts a transaction: a *pgx.Conn, a *pgxpool.Pool or a pgx.Tx (a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// lockKey serializes concurrent applies on one database, so each diffs against the state the previous one left.
const lockSQL = "SELECT pg_advisory_xact_lock(hashtextextended('tollgate apply', 0))"

// Apply makes the database hold what cfg describes, in one transaction: it takes a lock against concurrent
// applies, reads the current state, prints each change to out ("+ plan pro", "~ limit free/api_calls: 100 ->
// 200", ...) and makes it through the SQL functions, then commits (or rolls back for a dry run). It must run as
// the owner role (the one that ran the migrations): the functions it calls are owner-only.
//
// A database error is returned wrapped with the change that failed; nothing is written then.
func Apply(ctx context.Context, db Beginner, cfg *config.Config, opt Options, out io.Writer) (Result, error) {
	var res Result
	tx, err := db.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op

	if _, err := tx.Exec(ctx, lockSQL); err != nil {
		return res, fmt.Errorf("lock: %w", err)
	}
	cur, err := ReadState(ctx, tx)
	if err != nil {
		return res, err
	}
	res.Changes = Diff(cur, Desired(cfg), opt.Prune)
	for _, c := range res.Changes {
		fmt.Fprintln(out, c)
		if c.SQL == "" {
			continue
		}
		res.Writes++
		if _, err := tx.Exec(ctx, c.SQL, c.Args...); err != nil {
			return res, fmt.Errorf("%s: %w", c, err)
		}
	}
	if opt.DryRun || res.Writes == 0 {
		return res, nil // the deferred Rollback
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("commit: %w", err)
	}
	res.Committed = true
	return res, nil
}

// The current state. The tables are the owner's; apply runs as the owner.
const (
	selectPlans    = "SELECT plan, is_default, stripe_prices, stripe_products, rank FROM tollgate.plans ORDER BY plan"
	selectFeatures = "SELECT feature, period, enforcement, notify_at, message, upgrade_prompt FROM tollgate.features ORDER BY feature"
	selectLimits   = "SELECT plan, feature, quota FROM tollgate.limits ORDER BY plan, feature"
	selectRoutes   = "SELECT method, pattern, feature, amount FROM tollgate.routes ORDER BY method, pattern"
	selectSettings = "SELECT key, value FROM tollgate.settings ORDER BY key"
	selectVariants = "SELECT feature, variant, weight, message, email FROM tollgate.prompt_variants ORDER BY feature, variant"
	selectTopups   = "SELECT topup, stripe_price, feature, amount, extract(epoch FROM expires)::bigint FROM tollgate.topups ORDER BY topup"
)

// ReadState reads the configuration tables.
func ReadState(ctx context.Context, q pgx.Tx) (State, error) {
	var s State
	var err error
	if s.Plans, err = query(ctx, q, selectPlans, func(r pgx.CollectableRow) (p PlanRow, err error) {
		err = r.Scan(&p.Plan, &p.IsDefault, &p.StripePrices, &p.StripeProducts, &p.Rank)
		return p, err
	}); err != nil {
		return s, err
	}
	if s.Features, err = query(ctx, q, selectFeatures, func(r pgx.CollectableRow) (f FeatureRow, err error) {
		err = r.Scan(&f.Feature, &f.Period, &f.Enforcement, &f.NotifyAt, &f.Message, &f.UpgradePrompt)
		return f, err
	}); err != nil {
		return s, err
	}
	if s.Limits, err = query(ctx, q, selectLimits, func(r pgx.CollectableRow) (l LimitRow, err error) {
		err = r.Scan(&l.Plan, &l.Feature, &l.Quota)
		return l, err
	}); err != nil {
		return s, err
	}
	if s.Routes, err = query(ctx, q, selectRoutes, func(r pgx.CollectableRow) (rt RouteRow, err error) {
		err = r.Scan(&rt.Method, &rt.Pattern, &rt.Feature, &rt.Amount)
		return rt, err
	}); err != nil {
		return s, err
	}
	if s.Variants, err = query(ctx, q, selectVariants, func(r pgx.CollectableRow) (v VariantRow, err error) {
		err = r.Scan(&v.Feature, &v.Variant, &v.Weight, &v.Message, &v.Email)
		return v, err
	}); err != nil {
		return s, err
	}
	if s.Topups, err = query(ctx, q, selectTopups, func(r pgx.CollectableRow) (t TopupRow, err error) {
		err = r.Scan(&t.Topup, &t.StripePrice, &t.Feature, &t.Amount, &t.ExpiresSeconds)
		return t, err
	}); err != nil {
		return s, err
	}
	if s.Settings, err = query(ctx, q, selectSettings, func(r pgx.CollectableRow) (st SettingRow, err error) {
		err = r.Scan(&st.Key, &st.Value)
		return st, err
	}); err != nil {
		return s, err
	}
	return s, nil
}

func query[T any](ctx context.Context, q pgx.Tx, sql string, scan pgx.RowToFunc[T]) ([]T, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return out, nil
}
