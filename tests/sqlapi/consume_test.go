package sqlapi_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// hammer runs clients goroutines, each with its own connection, each calling
// consume calls times on one customer, all released at once.
func hammer(t *testing.T, b *bundle, clients, calls int, customer, feature string) (allowed, blocked int64) {
	t.Helper()
	var s consumer
	race(t, b.appPool(t, int32(clients)), clients, calls, s.consume(customer, feature))
	return s.allowed.Load(), s.blocked.Load()
}

func TestConsumeExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "hard", []int32{50, 80, 100}, ptr[int64](50))

	allowed, blocked := hammer(t, b, 32, 300, "hot", "api_calls")
	require.EqualValues(t, 50, allowed)
	require.EqualValues(t, 32*300-50, blocked)
	require.EqualValues(t, 50, b.count(t, `SELECT used FROM tollgate.usage WHERE customer = 'hot' AND feature = 'api_calls'`))
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.customers WHERE customer = 'hot'`))
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE customer = 'hot' AND kind = 'limit_reached'`))
	for _, pct := range []int{50, 80, 100} {
		require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE customer = 'hot' AND kind = 'threshold' AND threshold = $1`, pct), "threshold %d", pct)
	}
	// each threshold event records the usage at its crossing
	require.EqualValues(t, 25, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = 50`))
	require.EqualValues(t, 40, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = 80`))
}

func TestConsumeSoftRecordsOverageUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "soft", []int32{80, 100}, ptr[int64](50))

	allowed, blocked := hammer(t, b, 32, 300, "hot", "api_calls")
	require.EqualValues(t, 32*300, allowed)
	require.Zero(t, blocked)
	v := call(t, b.owner, "check", "hot", "api_calls", 1)
	require.True(t, v.Allowed)
	require.EqualValues(t, 32*300, v.Used)
	require.EqualValues(t, 0, *v.Remaining)
	require.NotNil(t, v.Message, "over quota: the verdict carries the upgrade message")
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached'`))
	require.EqualValues(t, 51, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'limit_reached'`))
	require.EqualValues(t, 2, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'threshold'`))
}

func TestFirstCallsRaceRegistersOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "hard", []int32{100}, ptr[int64](1000))
	for i := 0; i < 5; i++ {
		customer := "new" + strconv.Itoa(i)
		allowed, _ := hammer(t, b, 16, 1, customer, "api_calls")
		require.EqualValues(t, 16, allowed)
		require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.customers WHERE customer = $1`, customer))
		require.EqualValues(t, 16, call(t, b.owner, "check", customer, "api_calls", 1).Used)
	}
}

func TestBlockedCallCountsNothingAndVerdictSaysWhy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.define_feature('api_calls', '30d', 'hard', '{100}', 'Upgrade to continue.')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'api_calls', 3)`)

	for i := 1; i <= 3; i++ {
		v := call(t, b.owner, "consume", "c", "api_calls", 1)
		require.True(t, v.Allowed)
		require.EqualValues(t, i, v.Used)
		require.EqualValues(t, 3-i, *v.Remaining)
		require.Nil(t, v.Message)
		require.Equal(t, "free", v.Plan)
	}
	v := call(t, b.owner, "consume", "c", "api_calls", 1)
	require.False(t, v.Allowed)
	require.EqualValues(t, 3, v.Used)
	require.Equal(t, "Upgrade to continue.", *v.Message)
	// an amount larger than what remains is blocked whole
	call(t, b.owner, "refund", "c", "api_calls", 2)
	v = call(t, b.owner, "consume", "c", "api_calls", 2)
	require.True(t, v.Allowed)
	v = call(t, b.owner, "consume", "c", "api_calls", 2)
	require.False(t, v.Allowed)
	require.EqualValues(t, 3, v.Used)
}

func TestRollbackLeavesNoTrace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "hard", []int32{100}, ptr[int64](1))
	ctx := context.Background()

	listener := b.db.Conn(t, b.db.URL)
	_, err := listener.Exec(ctx, `LISTEN tollgate_events`)
	require.NoError(t, err)

	app := b.db.Conn(t, b.db.AppURL)
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	v := call(t, tx, "consume", "c", "api_calls", 1) // crosses 100%: writes an event
	require.True(t, v.Allowed)
	require.NoError(t, tx.Rollback(ctx))

	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.usage`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.events`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM tollgate.customers`))

	// The next committed crossing is the first notification the listener
	// gets: the rolled-back one was never delivered.
	call(t, app, "consume", "d", "api_calls", 1)
	id := b.count(t, `SELECT id FROM tollgate.events WHERE customer = 'd'`)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(id, 10), n.Payload)
}

func TestNotifyOnlyOnEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "hard", []int32{100}, ptr[int64](10))
	ctx := context.Background()
	listener := b.db.Conn(t, b.db.URL)
	_, err := listener.Exec(ctx, `LISTEN tollgate_events`)
	require.NoError(t, err)

	app := b.db.Conn(t, b.db.AppURL)
	for i := 0; i < 11; i++ { // 9 ordinary calls, the 10th crosses 100%, the 11th is blocked
		call(t, app, "consume", "c", "api_calls", 1)
	}
	var ids []string
	rows, err := b.owner.Query(ctx, `SELECT id::text FROM tollgate.events ORDER BY id`)
	require.NoError(t, err)
	ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, ids, 2)
	// A marker sent after the calls bounds what we wait for: notifications
	// arrive in commit order, so everything before it is what the calls sent.
	_, err = b.owner.Exec(ctx, `SELECT pg_notify('tollgate_events', 'marker')`)
	require.NoError(t, err)
	var got []string
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		n, err := listener.WaitForNotification(waitCtx)
		require.NoError(t, err)
		if n.Payload == "marker" {
			break
		}
		got = append(got, n.Payload)
	}
	require.Equal(t, ids, got)
}

func TestRequireRaisesTG402WithDetail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `SELECT tollgate.define_feature('exports', 'month', 'hard', '{100}', 'Exports are a pro feature.')`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'exports', 1)`)
	app := b.db.Conn(t, b.db.AppURL)
	ctx := context.Background()

	v := call(t, app, "require", "c", "exports", 1)
	require.True(t, v.Allowed)
	_, err := app.Exec(ctx, `SELECT tollgate.require('c', 'exports')`)
	requireCode(t, err, "TG402")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "Exports are a pro feature.", pgErr.Hint)
	var detail struct {
		Feature  string     `json:"feature"`
		Used     int64      `json:"used"`
		Quota    int64      `json:"quota"`
		ResetsAt *time.Time `json:"resets_at"`
		Amount   int64      `json:"amount"`
	}
	require.NoError(t, json.Unmarshal([]byte(pgErr.Detail), &detail))
	require.Equal(t, "exports", detail.Feature)
	require.EqualValues(t, 1, detail.Used)
	require.EqualValues(t, 1, detail.Quota)
	require.NotNil(t, detail.ResetsAt)
	require.EqualValues(t, 1, detail.Amount)
}

// limit_reached means the customer's usage blocked them: a call larger than
// the whole quota is refused without an event (no prompt to someone who used
// nothing), a call blocked by usage writes it once, and a feature the plan
// does not include (quota 0) writes it on the first try.
func TestLimitReachedMeansTheQuotaWasUsed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](100))
	b.feature(t, "r", "rolling 7d", "hard", []int32{100}, ptr[int64](100))
	b.feature(t, "sso", "lifetime", "hard", []int32{100}, ptr[int64](0))
	for _, feature := range []string{"f", "r"} {
		v := call(t, b.owner, "consume", "c_"+feature, feature, 1000)
		require.False(t, v.Allowed)
		require.EqualValues(t, 0, v.Used)
		v = call(t, b.owner, "note_blocked", "c_"+feature, feature, 1000)
		require.False(t, v.Allowed)
		require.Zero(t, events(t, b, "c_"+feature, "limit_reached"), feature)

		require.True(t, call(t, b.owner, "consume", "c_"+feature, feature, 95).Allowed)
		require.False(t, call(t, b.owner, "consume", "c_"+feature, feature, 10).Allowed)
		require.False(t, call(t, b.owner, "consume", "c_"+feature, feature, 10).Allowed)
		require.EqualValues(t, 1, events(t, b, "c_"+feature, "limit_reached"), feature)
		require.EqualValues(t, 95, b.count(t, `SELECT used FROM tollgate.events WHERE customer = $1 AND kind = 'limit_reached'`, "c_"+feature))
	}
	require.False(t, call(t, b.owner, "consume", "c", "sso", 1).Allowed)
	require.EqualValues(t, 1, events(t, b, "c", "limit_reached"))
}

// A refund gives back at most what the customer used in the current window:
// never below 0, and never into a window already closed.
func TestRefundIsBoundedByTheWindowsUsage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](100))
	jan := time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)
	feb := jan.AddDate(0, 1, 0)
	require.True(t, at(t, b.owner, "consume", "c", "f", 100, jan).Allowed)
	require.True(t, at(t, b.owner, "consume", "c", "f", 3, feb).Allowed)
	v := at(t, b.owner, "refund", "c", "f", 1_000_000, feb)
	require.EqualValues(t, 0, v.Used)
	require.EqualValues(t, 100, at(t, b.owner, "check", "c", "f", 1, jan).Used, "January stays as it closed")
	require.True(t, at(t, b.owner, "consume", "c", "f", 100, feb).Allowed)
	require.False(t, at(t, b.owner, "consume", "c", "f", 1, feb).Allowed)
}
