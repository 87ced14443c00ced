package mailer

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Tests of the outbox's SQL functions (sql/email_*.sql), called as the sidecar role.

func TestCollectMakesOneEmailPerLimitEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	ctx := context.Background()
	b.exec(t, `SELECT tollgate.define_feature('api', 'month', notify_at => '{50,100}', upgrade_prompt => 'upgrade_prompt')`)
	b.exec(t, `SELECT tollgate.define_feature('quiet', 'month')`) // no prompt
	b.exec(t, `SELECT tollgate.set_limit('free', 'quiet', 1)`)
	b.customer(t, "alice", "alice@example.test")
	b.customer(t, "bob", "bob@example.test")
	b.customer(t, "nomail", "x@example.test")
	b.exec(t, `UPDATE tollgate.customers SET email = NULL WHERE customer = 'nomail'`)
	b.customer(t, "optout", "optout@example.test")
	_, err := b.app.Exec(ctx, `SELECT tollgate.set_email_opt_out('optout', true)`)
	require.NoError(t, err)

	for _, c := range []string{"alice", "nomail", "optout"} {
		b.hitLimit(t, c, 2) // a threshold event at 50% and 100%, then limit_reached
	}
	require.True(t, b.consume(t, "bob", 1)) // a 50% threshold only
	_, err = b.app.Exec(ctx, `SELECT tollgate.consume('alice', 'quiet'), tollgate.consume('alice', 'quiet')`)
	require.NoError(t, err) // limit_reached of a feature without a prompt

	events := b.count(t, `SELECT count(*) FROM tollgate.events`)
	var n int
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_collect(2)`).Scan(&n))
	require.Equal(t, 2, n)
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_collect()`).Scan(&n))
	require.EqualValues(t, events-2, n)
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_collect()`).Scan(&n))
	require.Zero(t, n)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.events WHERE processed_at IS NULL`))

	rows := b.emails(t)
	require.Len(t, rows, 3)
	byCustomer := map[string]emailRow{}
	for _, r := range rows {
		byCustomer[r.Customer] = r
	}
	require.Equal(t, "pending", byCustomer["alice"].Status)
	require.Equal(t, "alice@example.test", *byCustomer["alice"].ToEmail)
	require.Equal(t, "skipped", byCustomer["nomail"].Status)
	require.Contains(t, *byCustomer["nomail"].LastError, "no email address")
	require.Equal(t, "skipped", byCustomer["optout"].Status)
	require.Contains(t, *byCustomer["optout"].LastError, "opted out")
}

func TestCollectKeepsOneEmailPerWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	ctx := context.Background()
	b.customer(t, "alice", "alice@example.test")
	b.hitLimit(t, "alice", 1)
	// a second limit event of the same window (as a rolling window's can be), and one of the next window
	b.exec(t, `INSERT INTO tollgate.events (kind, customer, feature, plan, used, quota, threshold, period_start)
	           SELECT kind, customer, feature, plan, used, quota, 99, period_start FROM tollgate.events`)
	b.exec(t, `INSERT INTO tollgate.events (kind, customer, feature, plan, used, quota, threshold, period_start)
	           SELECT kind, customer, feature, plan, used, quota, 100, period_start + interval '1 month'
	             FROM tollgate.events WHERE threshold = 100`)
	_, err := b.sidecar.Exec(ctx, `SELECT tollgate.outbox_collect()`)
	require.NoError(t, err)
	require.EqualValues(t, 2, b.count(t, `SELECT count(*) FROM tollgate.emails`))
	require.EqualValues(t, 2, b.count(t, `SELECT count(DISTINCT period_start) FROM tollgate.emails`))
}

func TestRolledBackConsumeLeavesNoEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	ctx := context.Background()
	b.customer(t, "alice", "alice@example.test")
	tx, err := b.app.Begin(ctx)
	require.NoError(t, err)
	for range 2 {
		_, err = tx.Exec(ctx, `SELECT tollgate.consume('alice', 'api')`)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Rollback(ctx))
	var n int
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_collect()`).Scan(&n))
	require.Zero(t, n)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.events`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.emails`))
}

// claimAll claims as worker and returns the claims by id.
func claimAll(t testing.TB, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, worker string, n int, stale string) map[int64]claim {
	t.Helper()
	rows, err := q.Query(context.Background(), `
		SELECT id, attempt, interrupted, last_provider, template, customer, to_email, feature, plan, used, quota,
		       period_start, resets_at, message, event_at, sender, subject, body_text, body_html, event_id, variant
		  FROM tollgate.outbox_claim($1, $2, $3::interval)`, worker, n, stale)
	require.NoError(t, err)
	cs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[claim])
	require.NoError(t, err)
	out := map[int64]claim{}
	for _, c := range cs {
		out[c.ID] = c
	}
	return out
}

// register keeps worker alive until the test ends.
func (b *testBundle) register(t testing.TB, worker string) {
	t.Helper()
	_, err := b.db.Conn(t, b.db.SidecarURL).Exec(context.Background(), `SELECT tollgate.outbox_register($1)`, worker)
	require.NoError(t, err)
}

// pending makes n customers hit the limit and collects their emails.
func (b *testBundle) pending(t testing.TB, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := b.app.Exec(ctx, `SELECT tollgate.set_customer('c' || i, 'c' || i || '@example.test') FROM generate_series(1, $1) i`, n)
	require.NoError(t, err)
	for range 2 {
		_, err = b.app.Exec(ctx, `SELECT tollgate.consume('c' || i, 'api') FROM generate_series(1, $1) i`, n)
		require.NoError(t, err)
	}
	_, err = b.sidecar.Exec(ctx, `SELECT tollgate.outbox_collect()`)
	require.NoError(t, err)
	require.EqualValues(t, n, b.count(t, `SELECT count(*) FROM tollgate.emails WHERE status = 'pending'`))
}

func TestClaimReturnsWhatRenderingNeeds(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.exec(t, `SELECT tollgate.define_feature('api', 'month', message => 'Upgrade now!', upgrade_prompt => 'upgrade_prompt')`)
	b.pending(t, 1)
	b.register(t, "w1")
	cs := claimAll(t, b.sidecar, "w1", 10, "5 minutes")
	require.Len(t, cs, 1)
	for _, c := range cs {
		require.Equal(t, 1, c.Attempt)
		require.False(t, c.Interrupted)
		require.Equal(t, "upgrade_prompt", c.Template)
		require.Equal(t, "c1", c.Customer)
		require.Equal(t, "c1@example.test", *c.ToEmail)
		require.Equal(t, "api", c.Feature)
		require.Equal(t, "free", c.Plan)
		require.EqualValues(t, 1, c.Used)
		require.EqualValues(t, 1, *c.Quota)
		require.NotNil(t, c.resetsAt())
		require.False(t, c.periodStart().IsZero())
		require.Equal(t, "Upgrade now!", *c.Message)
		require.Nil(t, c.Subject)
		require.NotNil(t, finite(c.EventAt))
		require.WithinDuration(t, time.Now(), c.EventAt.Time, time.Minute)
	}
	require.Empty(t, claimAll(t, b.sidecar, "w2", 10, "5 minutes"), "a row claimed by a live worker is not claimed again")
}

func TestConcurrentClaimsSkipLockedRows(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.pending(t, 3)
	ctx := context.Background()
	tx1, err := b.sidecar.Begin(ctx)
	require.NoError(t, err)
	defer tx1.Rollback(ctx)
	first := claimAll(t, tx1, "w1", 2, "5 minutes")
	require.Len(t, first, 2)
	// tx1 has not committed: its rows are locked, and w2 gets the third without waiting
	second := claimAll(t, b.sidecar, "w2", 3, "5 minutes")
	require.Len(t, second, 1)
	for id := range second {
		require.NotContains(t, first, id)
	}
}

func TestClaimsOfAGoneWorkerAreTakenOver(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.pending(t, 2)
	ctx := context.Background()
	alive := b.db.Conn(t, b.db.SidecarURL)
	_, err := alive.Exec(ctx, `SELECT tollgate.outbox_register('w1')`)
	require.NoError(t, err)
	_, err = alive.Exec(ctx, `SELECT tollgate.outbox_register('w1')`) // again: harmless
	require.NoError(t, err)

	cs := claimAll(t, b.sidecar, "w1", 2, "5 minutes")
	require.Len(t, cs, 2)
	var begun, notBegun claim
	for _, c := range cs {
		if begun.ID == 0 {
			begun = c
		} else {
			notBegun = c
		}
	}
	var to string
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT email_to FROM tollgate.outbox_begin($1, $2, 'resend', 'a@b.test', 's', 't', 'h')`,
		begun.ID, begun.Attempt).Scan(&to))
	require.Equal(t, begun.ToEmail, &to)

	require.Empty(t, claimAll(t, b.sidecar, "w2", 2, "5 minutes"), "w1 is alive")
	require.NoError(t, alive.Close(ctx))
	var again map[int64]claim
	require.Eventually(t, func() bool { // the backend ends a moment after the client closes
		again = claimAll(t, b.sidecar, "w2", 2, "5 minutes")
		return len(again) == 2
	}, 10*time.Second, 10*time.Millisecond)
	require.True(t, again[begun.ID].Interrupted)
	require.Equal(t, "resend", *again[begun.ID].LastProvider)
	require.Equal(t, "s", *again[begun.ID].Subject)
	require.Equal(t, 2, again[begun.ID].Attempt)
	require.False(t, again[notBegun.ID].Interrupted)
	require.Nil(t, again[notBegun.ID].Subject)

	// w1's claims are lost: its hand-off and its failure change nothing
	_, err = b.sidecar.Exec(ctx, `SELECT * FROM tollgate.outbox_begin($1, $2, 'smtp', 'a@b.test', 's', 't', 'h')`, notBegun.ID, notBegun.Attempt)
	require.NoError(t, err)
	require.EqualValues(t, 0, b.count(t, `SELECT count(*) FROM tollgate.emails WHERE handed_off_at IS NOT NULL AND id = $1`, notBegun.ID))
	var status *string
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_failed($1, $2, 'x', '1 second', false, 5)`,
		notBegun.ID, notBegun.Attempt).Scan(&status))
	require.Nil(t, status)
}

func TestStaleClaimsAreTakenOver(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.pending(t, 1)
	b.register(t, "w1")
	require.Len(t, claimAll(t, b.sidecar, "w1", 1, "5 minutes"), 1)
	require.Empty(t, claimAll(t, b.sidecar, "w2", 1, "5 minutes"))
	b.exec(t, `UPDATE tollgate.emails SET claimed_at = now() - interval '10 minutes'`)
	require.Len(t, claimAll(t, b.sidecar, "w2", 1, "5 minutes"), 1)
}

func TestBeginStoresTheFirstRendering(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.pending(t, 1)
	ctx := context.Background()
	begin := func(c claim, subject string) []string {
		var to, from, s, text, html string
		require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT * FROM tollgate.outbox_begin($1, $2, 'resend', $3, $4, $5, $6)`,
			c.ID, c.Attempt, "A <a@b.test>", subject, "text "+subject, "html "+subject).Scan(&to, &from, &s, &text, &html))
		return []string{to, from, s, text, html}
	}
	var c claim
	for _, c = range claimAll(t, b.sidecar, "w1", 1, "5 minutes") {
	}
	require.Equal(t, []string{"c1@example.test", "A <a@b.test>", "first", "text first", "html first"}, begin(c, "first"))
	var status string
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_failed($1, $2, '500 oops', '0 seconds', false, 5)`,
		c.ID, c.Attempt).Scan(&status))
	require.Equal(t, "failed", status)
	// the customer's address changes; the retry still sends the stored email to the stored address
	b.customer(t, "c1", "new@example.test")
	for _, c = range claimAll(t, b.sidecar, "w1", 1, "5 minutes") {
	}
	require.Equal(t, 2, c.Attempt)
	require.False(t, c.Interrupted, "the failed attempt ended cleanly")
	require.Equal(t, "first", *c.Subject)
	require.Equal(t, "c1@example.test", *c.ToEmail)
	require.Equal(t, []string{"c1@example.test", "A <a@b.test>", "first", "text first", "html first"}, begin(c, "second"))

	var secs *float64
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_sent($1, 'resend', 're_1')`, c.ID).Scan(&secs))
	require.NotNil(t, secs)
	require.GreaterOrEqual(t, *secs, 0.0)
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_sent($1, 'resend', 're_1')`, c.ID).Scan(&secs))
	require.Nil(t, secs, "marked once")
	rows := b.emails(t)
	require.Equal(t, "sent", rows[0].Status)
	require.Equal(t, "re_1", *rows[0].ProviderID)
	require.Nil(t, rows[0].LastError)
}

func TestFailedBecomesDeadAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.pending(t, 2)
	ctx := context.Background()
	fail := func(c claim, permanent bool) string {
		var status string
		require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_failed($1, $2, '503 busy', '0 seconds', $3, 2)`,
			c.ID, c.Attempt, permanent).Scan(&status))
		return status
	}
	cs := claimAll(t, b.sidecar, "w1", 2, "5 minutes")
	var first, second claim
	for _, c := range cs {
		if first.ID == 0 || c.ID < first.ID {
			second, first = first, c
		} else {
			second = c
		}
	}
	require.Equal(t, "dead", fail(first, true), "a permanent error is dead at once")
	require.Equal(t, "failed", fail(second, false))
	c := claimAll(t, b.sidecar, "w1", 2, "5 minutes")[second.ID]
	require.Equal(t, 2, c.Attempt)
	require.Equal(t, "dead", fail(c, false))
	require.Empty(t, claimAll(t, b.sidecar, "w1", 2, "5 minutes"))

	counts := map[string]int64{}
	rows, err := b.sidecar.Query(ctx, `SELECT status, emails FROM tollgate.outbox_counts()`)
	require.NoError(t, err)
	var s string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&s, &n}, func() error { counts[s] = n; return nil })
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"pending": 0, "sending": 0, "sent": 0, "failed": 0, "dead": 2, "skipped": 0}, counts)

	// a provider that did take an email given up meanwhile has the last word
	var secs *float64
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_sent($1, 'smtp', '<x@y>')`, first.ID).Scan(&secs))
	require.Equal(t, "sent", b.emails(t)[0].Status)
}

func TestOptOutBeforeClaimSkipsTheEmail(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.pending(t, 2)
	ctx := context.Background()
	_, err := b.app.Exec(ctx, `SELECT tollgate.set_email_opt_out('c1', true)`)
	require.NoError(t, err)
	b.exec(t, `UPDATE tollgate.customers SET email = NULL WHERE customer = 'c2'`)
	require.Empty(t, claimAll(t, b.sidecar, "w1", 5, "5 minutes"))
	rows := b.emails(t)
	require.Equal(t, "skipped", rows[0].Status)
	require.Contains(t, *rows[0].LastError, "opted out")
	require.Equal(t, "skipped", rows[1].Status)
	require.Contains(t, *rows[1].LastError, "no email address")

	// opting out is idempotent and can be undone; an unknown customer is registered
	for _, stmt := range []string{
		`SELECT tollgate.set_email_opt_out('c1', true)`,
		`SELECT tollgate.set_email_opt_out('c1', false)`,
		`SELECT tollgate.set_email_opt_out('newcomer', true)`,
	} {
		_, err := b.app.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.customers WHERE email_opt_out`))
}

func TestOutboxFunctionsBelongToTheirRoles(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	ctx := context.Background()
	sidecarOnly := []string{
		`SELECT tollgate.outbox_collect()`,
		`SELECT * FROM tollgate.outbox_claim('w', 1, '1 minute')`,
		`SELECT * FROM tollgate.outbox_begin(1, 1, 'log', 'a', 's', 't', 'h')`,
		`SELECT tollgate.outbox_sent(1, 'log', 'x')`,
		`SELECT tollgate.outbox_failed(1, 1, 'e', '1 second', false, 3)`,
		`SELECT * FROM tollgate.outbox_counts()`,
		`SELECT tollgate.outbox_register('w')`,
	}
	for _, stmt := range sidecarOnly {
		_, err := b.sidecar.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
		_, err = b.app.Exec(ctx, stmt)
		require.Equal(t, "42501", sqlstate(err), "%s: %v", stmt, err)
	}
	for _, stmt := range []string{
		`SELECT tollgate.set_email_opt_out('c', true)`,
		`SELECT tollgate._outbox_worker_gone('w')`,
		`SELECT * FROM tollgate.emails`,
		`UPDATE tollgate.emails SET status = 'sent'`,
		`UPDATE tollgate.events SET processed_at = now()`,
	} {
		_, err := b.sidecar.Exec(ctx, stmt)
		require.Equal(t, "42501", sqlstate(err), "%s: %v", stmt, err)
	}
	_, err := b.app.Exec(ctx, `SELECT tollgate._outbox_worker_gone('w')`)
	require.Equal(t, "42501", sqlstate(err))
}

func TestOutboxFunctionsRejectBadArguments(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	ctx := context.Background()
	for _, stmt := range []string{
		`SELECT tollgate.outbox_collect(0)`,
		`SELECT tollgate.outbox_collect(NULL)`,
		`SELECT * FROM tollgate.outbox_claim('', 1, '1 minute')`,
		`SELECT * FROM tollgate.outbox_claim('w', 0, '1 minute')`,
		`SELECT * FROM tollgate.outbox_claim('w', 1, '0 seconds')`,
		`SELECT * FROM tollgate.outbox_claim('w', 1, NULL)`,
		`SELECT * FROM tollgate.outbox_begin(1, 1, '', 'a', 's', 't', 'h')`,
		`SELECT * FROM tollgate.outbox_begin(1, 1, 'log', 'a', NULL, 't', 'h')`,
		`SELECT tollgate.outbox_sent(1, NULL, 'x')`,
		`SELECT tollgate.outbox_failed(1, 1, 'e', '1 second', NULL, 3)`,
		`SELECT tollgate.outbox_failed(1, 1, 'e', '1 second', false, 0)`,
		`SELECT tollgate.outbox_register('')`,
	} {
		_, err := b.sidecar.Exec(ctx, stmt)
		require.Equal(t, "TG422", sqlstate(err), "%s: %v", stmt, err)
	}
	for _, stmt := range []string{
		`SELECT tollgate.set_email_opt_out('', true)`,
		`SELECT tollgate.set_email_opt_out('c', NULL)`,
	} {
		_, err := b.app.Exec(ctx, stmt)
		require.Equal(t, "TG422", sqlstate(err), "%s: %v", stmt, err)
	}
}
