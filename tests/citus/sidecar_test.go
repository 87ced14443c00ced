package citus_test

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/sidecar/mailer"
	"github.com/tollgate/tollgate/sidecar/stripesync"
	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
)

// printed is what the log provider printed: a writer that tests read while mailers write.
type printed struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *printed) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *printed) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

var toLine = regexp.MustCompile(`(?m)^To: (.+)$`)

// The sidecar sends one upgrade email per limit event on a cluster. The events are written on the workers
// by delegated calls, whose NOTIFY wakes only the workers' listeners: the mailers (two replicas, as the
// coordinator's sidecar role) find them by their poll, and claim each email once across the shards.
func TestSidecarSendsOneEmailPerLimitEvent(t *testing.T) {
	t.Parallel()
	const limit = 3
	b := setup(t, limit)
	ctx := context.Background()
	byWorker := b.customersOnEachWorker(t, "mail", 5)
	want := map[string]int{}
	for _, cs := range byWorker {
		for _, c := range cs {
			_, err := b.app.Exec(ctx, `SELECT tollgate.set_customer($1, $2)`, c, c+"@example.com")
			require.NoError(t, err)
			want[c+"@example.com"] = 1
		}
	}
	b.exec(t, `SELECT tollgate.set_customer('quiet', 'quiet@example.com')`)
	b.exec(t, `SELECT tollgate.set_email_opt_out('quiet', true)`)

	out := &printed{}
	provider := mailer.NewLogProvider(out)
	tpl, err := mailer.LoadTemplates("")
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, worker := range []string{"replica-a", "replica-b"} {
		m, err := mailer.New(mailer.Options{
			Pool: b.sidecar, Provider: provider, Templates: tpl, From: "Acme <billing@acme.test>",
			UpgradeURL: "https://acme.test/upgrade", PollInterval: 200 * time.Millisecond, Worker: worker,
			RatePerSecond: 1000, Logger: slog.New(slog.DiscardHandler),
		})
		require.NoError(t, err)
		wg.Go(func() { require.NoError(t, m.Run(runCtx)) })
	}
	defer func() { stop(); wg.Wait() }()

	// every customer hits the limit; the blocked calls after the first write nothing more
	var all []string
	for _, cs := range byWorker {
		all = append(all, cs...)
	}
	all = append(all, "quiet")
	for _, c := range all {
		for range limit {
			ok, _ := b.consume(t, c, "api", 1)
			require.True(t, ok)
		}
		for range 3 {
			ok, _ := b.consume(t, c, "api", 1)
			require.False(t, ok)
		}
	}
	require.EqualValues(t, len(all), b.int(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached'`))

	eventually(t, 60*time.Second, "every email sent and the opted-out one skipped", func() bool {
		return b.int(t, `SELECT count(*) FROM tollgate.emails WHERE status = 'sent'`) == int64(len(want)) &&
			b.int(t, `SELECT count(*) FROM tollgate.emails WHERE status = 'skipped'`) == 1 &&
			b.int(t, `SELECT count(*) FROM tollgate.events WHERE processed_at IS NULL`) == 0
	})
	got := map[string]int{}
	for _, m := range toLine.FindAllStringSubmatch(out.String(), -1) {
		got[m[1]]++
	}
	require.Equal(t, want, got, "one email per customer that hit the limit; none to the one who opted out")
	require.EqualValues(t, len(all), b.int(t, `SELECT count(*) FROM tollgate.emails`))

	// the funnel counts them, on the coordinator, from the workers' rows
	var hitLimit, prompted int64
	require.NoError(t, b.sidecar.QueryRow(ctx, `
	  SELECT hit_limit, prompted FROM tollgate.funnel(now() - interval '1 hour', now() + interval '1 hour') WHERE feature = 'api'`).
		Scan(&hitLimit, &prompted))
	require.EqualValues(t, len(all), hitLimit)
	require.EqualValues(t, len(want), prompted)
}

// A Stripe sync (the sidecar's reconcile against a fake Stripe) moves a customer to the paid plan: the
// subscription is stored on the coordinator, its trigger recomputes the plan on the customer's worker, the
// conversion is recorded and attributed to the upgrade prompt sent before it, and the next delegated call
// decides with the new plan's quota. Cancelling moves the customer back.
func TestStripeSyncChangesThePlan(t *testing.T) {
	t.Parallel()
	const limit = 2
	b := setup(t, limit)
	ctx := context.Background()
	_, err := b.app.Exec(ctx, `SELECT tollgate.set_customer('ada', 'ada@example.com', 'cus_Ada')`)
	require.NoError(t, err)
	for range limit + 1 {
		b.consume(t, "ada", "api", 1)
	}
	ok, _ := b.consume(t, "ada", "api", 1)
	require.False(t, ok)
	// the prompt went out (by the sidecar's functions, as the mailer calls them)
	var n int
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_collect()`).Scan(&n))
	require.Positive(t, n)
	var id int64
	var attempt int
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT id, attempt FROM tollgate.outbox_claim('w', 1)`).Scan(&id, &attempt))
	_, err = b.sidecar.Exec(ctx, `SELECT * FROM tollgate.outbox_begin($1, $2, 'log', 'f', 's', 't', 'h')`, id, attempt)
	require.NoError(t, err)
	var seconds *float64
	require.NoError(t, b.sidecar.QueryRow(ctx, `SELECT tollgate.outbox_sent($1, 'log', 'x')`, id).Scan(&seconds))
	require.NotNil(t, seconds)

	fake := stripetest.NewFake(t)
	now := time.Now()
	fake.PutSubscription(stripetest.Subscription{ID: "sub_Ada", Customer: "cus_Ada", Status: "active",
		Items: []stripetest.Item{{Price: "price_pro", Product: "prod_pro"}}, Created: now.Add(-time.Hour).Unix()})
	syncer, err := stripesync.New(stripesync.Options{
		Pool:   b.sidecar,
		Client: stripesync.NewClient(stripesync.ClientOptions{Key: stripetest.Key, APIBase: fake.URL, RatePerSecond: 1000}),
	})
	require.NoError(t, err)
	res, err := syncer.Reconcile(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 1, res.Subscriptions)

	var plan string
	require.NoError(t, b.owner.QueryRow(ctx, `SELECT plan FROM tollgate.customers WHERE customer = 'ada'`).Scan(&plan))
	require.Equal(t, "pro", plan)
	var kind string
	var emailID *int64
	require.NoError(t, b.owner.QueryRow(ctx, `SELECT kind, email_id FROM tollgate.plan_changes WHERE customer = 'ada'`).Scan(&kind, &emailID))
	require.Equal(t, "conversion", kind)
	require.NotNil(t, emailID)
	require.Equal(t, id, *emailID)
	ok, used := b.consume(t, "ada", "api", 1)
	require.True(t, ok, "pro's quota")
	require.EqualValues(t, limit+1, used)

	fake.SetStatus("sub_Ada", "canceled")
	_, err = syncer.Reconcile(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, 0, b.int(t, `SELECT count(*) FROM tollgate.customers WHERE customer = 'ada' AND plan IS NOT NULL`))
	require.EqualValues(t, 1, b.int(t, `SELECT count(*) FROM tollgate.plan_changes WHERE customer = 'ada' AND kind = 'churn'`))
	ok, _ = b.consume(t, "ada", "api", 1)
	require.False(t, ok, "back on free")
	require.Empty(t, unmapped(t, b))
}

func unmapped(t *testing.T, b *bundle) []string {
	t.Helper()
	rows, err := b.sidecar.Query(context.Background(), `SELECT stripe_subscription FROM tollgate.unmapped_subscriptions()`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}
