package sqlapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A hot customer is spread over slots with leases of quota; the count stays
// exact: never over the quota, every allowed call counted once, each event
// once, and the usage row's leased equal to what its slots hold.
func TestHotCustomerOnSlotsStaysExact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "hard", []int32{25, 50, 100}, ptr[int64](4000))

	allowed, blocked := hammer(t, b, 32, 200, "hot", "api_calls")
	require.EqualValues(t, 4000, allowed)
	require.EqualValues(t, 32*200-4000, blocked)
	require.Positive(t, b.count(t, `SELECT count(*) FROM tollgate.usage_slots WHERE customer = 'hot'`),
		"32 clients on one customer should have spread it over slots")

	v := call(t, b.owner, "check", "hot", "api_calls", 1)
	require.EqualValues(t, 4000, v.Used)
	require.False(t, v.Allowed)
	require.EqualValues(t, 4000, b.count(t, `
		SELECT u.used + coalesce((SELECT sum(x.used) FROM tollgate.usage_slots x
		                           WHERE x.customer = u.customer AND x.feature = u.feature AND x.window_start = u.window_start), 0)
		  FROM tollgate.usage u WHERE u.customer = 'hot'`))
	require.EqualValues(t, 0, b.count(t, `
		SELECT u.leased - coalesce((SELECT sum(x.used + x.lease) FROM tollgate.usage_slots x
		                             WHERE x.customer = u.customer AND x.feature = u.feature AND x.window_start = u.window_start), 0)
		  FROM tollgate.usage u WHERE u.customer = 'hot'`), "leased is what the slots hold")
	for pct, mark := range map[int]int64{25: 1000, 50: 2000, 100: 4000} {
		require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'threshold' AND threshold = $1`, pct), "threshold %d", pct)
		require.GreaterOrEqual(t, b.count(t, `SELECT used FROM tollgate.events WHERE kind = 'threshold' AND threshold = $1`, pct), mark)
	}
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached'`))
}

// An unlimited (paying) hot customer: every call counted, on slots, exactly.
func TestHotUnlimitedCustomerCountsEveryCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "month", "hard", []int32{100}, nil)
	allowed, _ := hammer(t, b, 16, 200, "hot", "api_calls")
	require.EqualValues(t, 16*200, allowed)
	require.EqualValues(t, 16*200, call(t, b.owner, "check", "hot", "api_calls", 1).Used)

	// a refund comes off the row first, then off the slots
	v := call(t, b.owner, "refund", "hot", "api_calls", 3000)
	require.EqualValues(t, 200, v.Used)
	require.EqualValues(t, 200, call(t, b.owner, "check", "hot", "api_calls", 1).Used)
	rows, err := b.owner.Query(context.Background(), `SELECT `+verdictCols+` FROM tollgate.usage('hot')`)
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	require.EqualValues(t, 200, scanVerdict(t, rows).Used)
}

// When a hot customer's window rolls over, what the slots counted joins the
// closed window's history and the new window starts from zero.
func TestSlotsRollOverIntoHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "api_calls", "30d", "hard", []int32{100}, ptr[int64](1_000_000))
	allowed, _ := hammer(t, b, 16, 150, "hot", "api_calls")
	require.EqualValues(t, 16*150, allowed)
	require.Positive(t, b.count(t, `SELECT count(*) FROM tollgate.usage_slots WHERE customer = 'hot'`))

	v := at(t, b.owner, "consume", "hot", "api_calls", 1, time.Now().Add(31*24*time.Hour))
	require.EqualValues(t, 1, v.Used)
	require.EqualValues(t, 16*150, b.count(t, `SELECT sum(used) FROM tollgate.usage_windows WHERE customer = 'hot'`))
	require.Zero(t, b.count(t, `SELECT coalesce(sum(used + lease), 0) FROM tollgate.usage_slots WHERE customer = 'hot'
	                              AND window_start = (SELECT window_start FROM tollgate.usage WHERE customer = 'hot')`))
}
