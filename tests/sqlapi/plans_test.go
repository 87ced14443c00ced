package sqlapi_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestPlanComesFromEntitledSubscription(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](100))
	b.exec(t, `SELECT tollgate.define_plan('team', false, '{price_team}', 20)`)
	b.exec(t, `SELECT tollgate.set_limit('team', 'f', 5000)`)
	// the subscription arrives before the app links the Stripe customer
	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
	           VALUES ('sub_1', 'cus_1', 'active', '{price_pro}')`)
	require.Equal(t, "free", call(t, b.owner, "check", "c", "f", 1).Plan)
	b.exec(t, `SELECT tollgate.set_customer('c', 'c@example.test', 'cus_1')`)
	v := call(t, b.owner, "check", "c", "f", 1)
	require.Equal(t, "pro", v.Plan)
	require.Nil(t, v.Quota)
	require.Nil(t, v.Remaining)

	setStatus := func(sub, status string) {
		b.exec(t, `UPDATE tollgate.subscriptions SET status = $2 WHERE stripe_subscription = $1`, sub, status)
	}
	for status, plan := range map[string]string{
		"trialing": "pro", "past_due": "free", "canceled": "free", "unpaid": "free",
		"incomplete": "free", "incomplete_expired": "free", "paused": "free", "active": "pro",
	} {
		setStatus("sub_1", status)
		require.Equal(t, plan, call(t, b.owner, "check", "c", "f", 1).Plan, status)
	}
	// past_due keeps the plan when configured as grace
	b.exec(t, `SELECT tollgate.set_setting('past_due_is_grace', 'true')`)
	setStatus("sub_1", "past_due")
	require.Equal(t, "pro", call(t, b.owner, "check", "c", "f", 1).Plan)

	// several subscriptions: the best-ranked entitled plan wins
	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
	           VALUES ('sub_2', 'cus_1', 'active', '{price_team}')`)
	v = call(t, b.owner, "check", "c", "f", 1)
	require.Equal(t, "team", v.Plan)
	require.EqualValues(t, 5000, *v.Quota)
	b.exec(t, `DELETE FROM tollgate.subscriptions WHERE stripe_subscription = 'sub_2'`)
	require.Equal(t, "pro", call(t, b.owner, "check", "c", "f", 1).Plan)

	// a price no plan names leaves the customer on the default plan
	b.exec(t, `UPDATE tollgate.subscriptions SET price_ids = '{price_unknown}', status = 'active'`)
	require.Equal(t, "free", call(t, b.owner, "check", "c", "f", 1).Plan)
	// until a plan names it (product ids count too)
	b.exec(t, `UPDATE tollgate.subscriptions SET product_ids = '{prod_team}'`)
	b.exec(t, `SELECT tollgate.define_plan('team', false, '{price_team}', 20, '{prod_team}')`)
	require.Equal(t, "team", call(t, b.owner, "check", "c", "f", 1).Plan)
}

func TestBooleanFeature(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.define_feature('sso', 'lifetime')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'sso', 0)`)
	b.exec(t, `SELECT tollgate.set_limit('pro', 'sso', NULL)`)
	b.exec(t, `SELECT tollgate.set_customer('p', NULL, 'cus_p')`)
	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
	           VALUES ('sub_p', 'cus_p', 'active', '{price_pro}')`)

	require.False(t, call(t, b.owner, "check", "f", "sso", 1).Allowed)
	require.True(t, call(t, b.owner, "check", "p", "sso", 1).Allowed)
	// a plan without a limit row does not get the feature either
	b.exec(t, `SELECT tollgate.define_feature('audit', 'lifetime')`)
	v := call(t, b.owner, "check", "f", "audit", 1)
	require.False(t, v.Allowed)
	require.EqualValues(t, 0, *v.Quota)
}

func TestCheckAndUsageChangeNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "a", "month", "hard", []int32{100}, ptr[int64](10))
	b.feature(t, "b", "lifetime", "hard", []int32{100}, nil)
	v := call(t, b.owner, "check", "c", "a", 3)
	require.True(t, v.Allowed)
	require.EqualValues(t, 0, v.Used)
	require.False(t, call(t, b.owner, "check", "c", "a", 11).Allowed)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.customers`))

	call(t, b.owner, "consume", "c", "a", 4)
	rows, err := b.owner.Query(context.Background(), `SELECT `+verdictCols+` FROM tollgate.usage('c')`)
	require.NoError(t, err)
	var got []verdict
	for rows.Next() {
		got = append(got, scanVerdict(t, rows))
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, 2)
	require.Equal(t, "a", got[0].Feature)
	require.EqualValues(t, 4, got[0].Used)
	require.EqualValues(t, 6, *got[0].Remaining)
	require.Equal(t, "b", got[1].Feature)
	require.Nil(t, got[1].Quota)
	require.EqualValues(t, 4, b.count(t, `SELECT sum(used) FROM tollgate.usage`))
}

func TestRefundNeverBelowZero(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	call(t, b.owner, "consume", "c", "f", 3)
	v := call(t, b.owner, "refund", "c", "f", 5)
	require.EqualValues(t, 0, v.Used)
	require.True(t, v.Allowed)
	v = call(t, b.owner, "refund", "nobody", "f", 1)
	require.EqualValues(t, 0, v.Used)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.customers WHERE customer = 'nobody'`))
}

func TestRowGate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.define_feature('projects', 'lifetime')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'projects', 3)`)
	b.exec(t, `SELECT tollgate.set_limit('pro', 'projects', NULL)`)
	b.exec(t, `CREATE TABLE projects (id serial PRIMARY KEY, owner_id integer, name text)`)
	b.exec(t, `GRANT ALL ON projects, projects_id_seq TO tollgate_test_app`)
	// rows already there are counted when the gate is attached
	b.exec(t, `INSERT INTO projects (owner_id, name) VALUES (7, 'old')`)
	b.exec(t, `SELECT tollgate.attach_row_gate('projects', 'owner_id', 'projects')`)
	b.exec(t, `SELECT tollgate.attach_row_gate('projects', 'owner_id', 'projects')`) // again: replaces, counts nothing twice
	require.EqualValues(t, 1, call(t, b.owner, "check", "7", "projects", 1).Used)

	ctx := context.Background()
	app := b.db.Conn(t, b.db.AppURL)
	for i := 0; i < 3; i++ {
		_, err := app.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (1)`)
		require.NoError(t, err)
	}
	// the 4th fails from any client: the app role and the owner alike
	_, err := app.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (1)`)
	requireCode(t, err, "TG402")
	_, err = b.owner.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (1)`)
	requireCode(t, err, "TG402")
	require.EqualValues(t, 3, b.count(t, `SELECT count(*) FROM projects WHERE owner_id = 1`))

	// DELETE gives one back
	_, err = app.Exec(ctx, `DELETE FROM projects WHERE id = (SELECT min(id) FROM projects WHERE owner_id = 1)`)
	require.NoError(t, err)
	_, err = app.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (1)`)
	require.NoError(t, err)

	// moving a project to another customer moves the count
	_, err = app.Exec(ctx, `UPDATE projects SET owner_id = 2 WHERE id = (SELECT max(id) FROM projects WHERE owner_id = 1)`)
	require.NoError(t, err)
	require.EqualValues(t, 2, call(t, b.owner, "check", "1", "projects", 1).Used)
	require.EqualValues(t, 1, call(t, b.owner, "check", "2", "projects", 1).Used)
	// a move onto a full customer fails whole
	_, err = app.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (1)`)
	require.NoError(t, err)
	_, err = app.Exec(ctx, `UPDATE projects SET owner_id = 1 WHERE owner_id = 2`)
	requireCode(t, err, "TG402")
	require.EqualValues(t, 1, call(t, b.owner, "check", "2", "projects", 1).Used)

	// concurrent inserts for a new customer: exactly 3 rows land
	var wg sync.WaitGroup
	pool := b.appPool(t, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = pool.Exec(ctx, `INSERT INTO projects (owner_id) VALUES (3)`)
		}()
	}
	wg.Wait()
	require.EqualValues(t, 3, b.count(t, `SELECT count(*) FROM projects WHERE owner_id = 3`))
	require.EqualValues(t, 3, call(t, b.owner, "check", "3", "projects", 1).Used)

	// unknown column and feature are refused with TG codes
	_, err = b.owner.Exec(ctx, `SELECT tollgate.attach_row_gate('projects', 'nope', 'projects')`)
	requireCode(t, err, "TG422")
	_, err = b.owner.Exec(ctx, `SELECT tollgate.attach_row_gate('projects', 'owner_id', 'nope')`)
	requireCode(t, err, "TG404")
}

// Usage rows carry a copy of the plan and quota for the one-statement hot
// path; a change of limit or of plan must still apply to the very next call.
func TestConfigChangesApplyAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](5))
	for i := 0; i < 3; i++ {
		require.True(t, call(t, b.owner, "consume", "c", "f", 1).Allowed)
	}
	b.exec(t, `SELECT tollgate.set_limit('free', 'f', 3)`)
	v := call(t, b.owner, "consume", "c", "f", 1)
	require.False(t, v.Allowed)
	require.EqualValues(t, 3, *v.Quota)
	require.EqualValues(t, 3, v.Used)

	b.exec(t, `SELECT tollgate.set_customer('c', NULL, 'cus_c')`)
	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
	           VALUES ('sub_c', 'cus_c', 'active', '{price_pro}')`)
	v = call(t, b.owner, "consume", "c", "f", 1)
	require.True(t, v.Allowed)
	require.Equal(t, "pro", v.Plan)
	require.EqualValues(t, 4, v.Used, "the window's usage carries over to the new plan")
	b.exec(t, `UPDATE tollgate.subscriptions SET status = 'canceled'`)
	v = call(t, b.owner, "consume", "c", "f", 1)
	require.False(t, v.Allowed)
	require.Equal(t, "free", v.Plan)

	// a feature switched to soft enforcement allows at once
	b.exec(t, `SELECT tollgate.define_feature('f', 'month', 'soft')`)
	v = call(t, b.owner, "consume", "c", "f", 1)
	require.True(t, v.Allowed)
	require.EqualValues(t, 5, v.Used)
	require.NotNil(t, v.Message)
}

func TestRoutesMostSpecificFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, nil)
	for _, r := range [][2]string{{"*", "/api/*"}, {"POST", "/api/*"}, {"GET", "/api/x"}, {"*", "/api/features/*"}, {"*", "/api/x"}} {
		b.exec(t, `SELECT tollgate.define_route($1, $2, 'f')`, r[0], r[1])
	}
	rows, err := b.owner.Query(context.Background(), `SELECT method || ' ' || pattern FROM tollgate.routes()`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"GET /api/x", "* /api/x", "* /api/features/*", "POST /api/*", "* /api/*"}, got)
}
