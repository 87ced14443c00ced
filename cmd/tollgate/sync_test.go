package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
	"github.com/tollgate/tollgate/tests/pgtest"
)

// stripeDB is a database with plans free (default) and pro (price_pro), and a fake Stripe.
func stripeDB(t *testing.T) (*pgtest.DB, *stripetest.Fake, map[string]string) {
	t.Helper()
	db := pgtest.NewDB(t)
	db.Exec(t, `SELECT tollgate.define_plan('free', true)`)
	db.Exec(t, `SELECT tollgate.define_plan('pro', false, '{price_pro}', 10)`)
	fake := stripetest.NewFake(t)
	env := map[string]string{
		"DATABASE_URL":      db.SidecarURL,
		"STRIPE_SECRET_KEY": stripetest.Key,
		"STRIPE_API_BASE":   fake.URL,
	}
	return db, fake, env
}

func customerPlan(t *testing.T, db *pgtest.DB, customer string) string {
	t.Helper()
	var plan string
	require.NoError(t, db.Pool(t).QueryRow(context.Background(), `SELECT coalesce(plan, 'free')
		FROM tollgate.customers WHERE customer = $1`, customer).Scan(&plan))
	return plan
}

func TestSyncCommand(t *testing.T) {
	t.Parallel()
	db, fake, env := stripeDB(t)
	getenv := func(k string) string { return env[k] }
	pro := []stripetest.Item{{Price: "price_pro"}}
	for _, c := range []string{"alice", "bob", "carol"} {
		db.Exec(t, `SELECT tollgate.set_customer($1, NULL, $2)`, c, "cus_"+c)
	}
	// bob was on pro when tollgate last heard; his cancellation's webhook was lost
	db.Exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, customer, status, price_ids)
		VALUES ('sub_b', 'cus_bob', 'bob', 'active', '{price_pro}')`)
	require.Equal(t, "pro", customerPlan(t, db, "bob"))
	fake.PutSubscription(stripetest.Subscription{ID: "sub_a", Customer: "cus_alice", Status: "active", Items: pro})
	fake.PutSubscription(stripetest.Subscription{ID: "sub_b", Customer: "cus_bob", Status: "canceled", Items: pro})
	fake.PutSubscription(stripetest.Subscription{ID: "sub_c", Customer: "cus_carol", Status: "trialing", Items: pro})

	var stdout, stderr bytes.Buffer
	code := syncCmd(t.Context(), []string{"--page-size", "2"}, &stdout, &stderr, getenv, false)
	require.Equal(t, 0, code, stderr.String())
	require.Regexp(t, `^synced 3 subscriptions in 2 pages \(`, stdout.String())
	require.Len(t, regexp.MustCompile(`(?m)^synced \d+ subscriptions \(page \d+, \d+/s\)$`).FindAllString(stderr.String(), -1), 2)
	require.Equal(t, "pro", customerPlan(t, db, "alice"))
	require.Equal(t, "free", customerPlan(t, db, "bob"))
	require.Equal(t, "pro", customerPlan(t, db, "carol"))

	// on a terminal: one line redrawn, full at the end
	stdout.Reset()
	stderr.Reset()
	code = syncCmd(t.Context(), []string{"--page-size", "2"}, &stdout, &stderr, getenv, true)
	require.Equal(t, 0, code, stderr.String())
	require.Equal(t, 2, strings.Count(stderr.String(), "\r\033[2K["), stderr.String())
	require.Regexp(t, `\] 100% 3 subscriptions, 2 pages, \d+/s\n$`, stderr.String())

	// a replica holds the lock: nothing done
	holder := db.Conn(t, db.SidecarURL)
	_, err := holder.Exec(t.Context(), `SELECT tollgate.start_sync_run()`)
	require.NoError(t, err)
	require.Equal(t, 1, syncCmd(t.Context(), nil, &stdout, &stderr, getenv, false))
}

func TestSyncCommandArguments(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	none := func(string) string { return "" }
	require.Equal(t, 2, syncCmd(t.Context(), []string{"extra"}, &stdout, &stderr, none, false))
	require.Equal(t, 2, syncCmd(t.Context(), nil, &stdout, &stderr, none, false))
	withDB := func(k string) string { return map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x"}[k] }
	require.Equal(t, 2, syncCmd(t.Context(), nil, &stdout, &stderr, withDB, false), "no STRIPE_SECRET_KEY")
	stdout.Reset()
	require.Equal(t, 0, syncCmd(t.Context(), []string{"--help"}, &stdout, &stderr, none, false))
	require.Contains(t, stdout.String(), "usage: tollgate sync")
}
