package mailer

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A lifetime feature's events and emails have period_start -infinity and no period_end. The upgrade prompt is
// sent once, marked sent, and keyed on the row (the infinite period start is "no period start").
func TestLifetimeFeatureEmailIsSent(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.exec(t, `SELECT tollgate.define_feature('exports', 'lifetime', upgrade_prompt => 'upgrade_prompt')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'exports', 2)`)
	f := newFakeResend(t)
	b.start(t, f.provider(t, 5*time.Second), nil)
	b.customer(t, "alice", "alice@example.test")

	var allowed bool
	for i, want := range []bool{true, true, false} {
		require.NoError(t, b.app.QueryRow(context.Background(),
			`SELECT allowed FROM tollgate.consume('alice', 'exports')`).Scan(&allowed), "call %d", i+1)
		require.Equal(t, want, allowed, "call %d", i+1)
	}

	rows := b.waitFinal(t, 1)
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.emails WHERE period_start = '-infinity'`),
		"the lifetime email is stored with period_start -infinity")
	require.Equal(t, "sent", rows[0].Status, "last error: %v", rows[0].LastError)
	require.Equal(t, 1, rows[0].Attempts)
	time.Sleep(300 * time.Millisecond) // nothing more is sent
	requests, delivered := f.snapshot()
	require.Len(t, requests, 1)
	require.Len(t, delivered, 1)
	require.Equal(t, delivered[0].ID, *rows[0].ProviderID)
	require.Equal(t, IdempotencyKey(rows[0].ID, "alice", "exports", time.Time{}), requests[0].Key)

	var body struct {
		Text string `json:"text"`
	}
	require.NoError(t, json.Unmarshal(delivered[0].Body, &body))
	require.Contains(t, body.Text, "You've used 2 of the 2 exports included in the free plan.")
	require.NotContains(t, body.Text, "resets")
}
