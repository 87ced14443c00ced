package mailer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Acceptance: three sidecar replicas on 200 limit events send 200 emails, none twice.
func TestThreeReplicasSendEachEmailOnce(t *testing.T) {
	t.Parallel()
	const customers = 200
	b := setup(t, 1)
	f := newFakeResend(t)
	p := f.provider(t, 5*time.Second)
	for i := range 3 {
		b.start(t, p, func(o *Options) {
			o.Pool = newPool(t, b.db.SidecarURL, 4)
			o.Worker = fmt.Sprintf("replica-%d", i)
			o.Senders = 3
		})
	}
	ctx := context.Background()
	_, err := b.app.Exec(ctx, `SELECT tollgate.set_customer('c' || i, 'c' || i || '@example.test') FROM generate_series(1, $1) i`, customers)
	require.NoError(t, err)
	_, err = b.app.Exec(ctx, `SELECT tollgate.consume('c' || i, 'api') FROM generate_series(1, $1) i`, customers)
	require.NoError(t, err)
	// the limit events come in batches of 20 transactions, each with its NOTIFY, while the replicas work
	for from := 1; from <= customers; from += 20 {
		_, err = b.app.Exec(ctx, `SELECT tollgate.consume('c' || i, 'api') FROM generate_series($1::int, $1::int + 19) i`, from)
		require.NoError(t, err)
	}
	rows := b.waitFinal(t, customers)
	requests, delivered := f.snapshot()
	require.Len(t, requests, customers, "no email was handed over twice")
	require.Len(t, delivered, customers)
	keys := map[string]bool{}
	for _, r := range requests {
		require.False(t, keys[r.Key], "duplicate key %s", r.Key)
		keys[r.Key] = true
	}
	workers := map[string]int{}
	for _, r := range rows {
		require.Equal(t, "sent", r.Status)
		require.Equal(t, 1, r.Attempts)
	}
	for _, w := range b.claimedBy(t) {
		workers[w]++
	}
	t.Logf("emails per replica: %v", workers)
}

func (b *testBundle) claimedBy(t testing.TB) []string {
	t.Helper()
	rows, err := b.owner.Query(context.Background(), `SELECT claimed_by FROM tollgate.emails`)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}
