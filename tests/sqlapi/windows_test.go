package sqlapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func requireTime(t *testing.T, want time.Time, got *time.Time) {
	t.Helper()
	require.NotNil(t, got)
	require.True(t, want.Equal(*got), "want %s, got %s", want.UTC(), got.UTC())
}

func TestWindowMonthIsCalendarUTC(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{100}, ptr[int64](10))
	// a session time zone far from UTC must not move the window
	b.exec(t, `ALTER DATABASE `+b.db.Name+` SET timezone = 'Pacific/Kiritimati'`)
	b.owner.Reset()

	v := at(t, b.owner, "consume", "c", "f", 1, utc("2027-01-31T23:59:59Z"))
	require.EqualValues(t, 1, v.Used)
	requireTime(t, utc("2027-02-01T00:00:00Z"), v.ResetsAt)
	v = at(t, b.owner, "consume", "c", "f", 1, utc("2027-01-01T00:00:00Z"))
	require.EqualValues(t, 2, v.Used, "the first instant of the month is in the window")
	v = at(t, b.owner, "consume", "c", "f", 1, utc("2027-02-01T00:00:00Z"))
	require.EqualValues(t, 1, v.Used, "a new month starts from zero")
	requireTime(t, utc("2027-03-01T00:00:00Z"), v.ResetsAt)
	v = at(t, b.owner, "check", "c", "f", 1, utc("2027-01-15T00:00:00Z"))
	require.EqualValues(t, 2, v.Used, "January's usage is kept")
}

func TestWindowFixedDaysAndHoursAnchorAtSignUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "d30", "30d", "hard", []int32{100}, ptr[int64](10))
	b.feature(t, "h12", "12h", "hard", []int32{100}, ptr[int64](10))
	signup := utc("2027-03-10T15:20:00Z")

	v := at(t, b.owner, "consume", "c", "d30", 1, signup)
	requireTime(t, signup.Add(30*24*time.Hour), v.ResetsAt)
	v = at(t, b.owner, "consume", "c", "d30", 1, signup.Add(30*24*time.Hour-time.Second))
	require.EqualValues(t, 2, v.Used)
	v = at(t, b.owner, "consume", "c", "d30", 1, signup.Add(30*24*time.Hour))
	require.EqualValues(t, 1, v.Used)
	requireTime(t, signup.Add(60*24*time.Hour), v.ResetsAt)

	v = at(t, b.owner, "consume", "c", "h12", 1, signup.Add(11*time.Hour))
	require.EqualValues(t, 1, v.Used)
	requireTime(t, signup.Add(12*time.Hour), v.ResetsAt)
	v = at(t, b.owner, "consume", "c", "h12", 1, signup.Add(12*time.Hour))
	require.EqualValues(t, 1, v.Used)
	requireTime(t, signup.Add(24*time.Hour), v.ResetsAt)
}

func TestWindowBillingFreeIsMonthlyFromSignUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "billing", "hard", []int32{100}, ptr[int64](10))
	signup := utc("2027-01-31T10:00:00Z")

	v := at(t, b.owner, "consume", "c", "f", 1, signup)
	requireTime(t, utc("2027-02-28T10:00:00Z"), v.ResetsAt)
	v = at(t, b.owner, "consume", "c", "f", 1, utc("2027-02-28T09:59:59Z"))
	require.EqualValues(t, 2, v.Used)
	v = at(t, b.owner, "consume", "c", "f", 1, utc("2027-02-28T10:00:00Z"))
	require.EqualValues(t, 1, v.Used)
	requireTime(t, utc("2027-03-31T10:00:00Z"), v.ResetsAt)
}

func TestWindowBillingFollowsTheSubscriptionPeriod(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "billing", "hard", []int32{100}, ptr[int64](10))
	b.exec(t, `SELECT tollgate.set_limit('pro', 'f', 1000)`)
	b.exec(t, `SELECT tollgate.set_customer('c', 'c@example.test', 'cus_c')`)
	start, end := utc("2027-05-07T08:00:00Z"), utc("2027-06-07T08:00:00Z")
	b.exec(t, `INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids, current_period_start, current_period_end)
	           VALUES ('sub_1', 'cus_c', 'active', '{price_pro}', $1, $2)`, start, end)

	v := at(t, b.owner, "consume", "c", "f", 1, start)
	require.Equal(t, "pro", v.Plan)
	requireTime(t, end, v.ResetsAt)
	v = at(t, b.owner, "consume", "c", "f", 1, end.Add(-time.Second))
	require.EqualValues(t, 2, v.Used)
	// past the period before the renewal is synced: the next month of the subscription
	v = at(t, b.owner, "consume", "c", "f", 1, end)
	require.EqualValues(t, 1, v.Used)
	requireTime(t, utc("2027-07-07T08:00:00Z"), v.ResetsAt)
}

func TestWindowRollingSlidesByTheHour(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "rolling 2d", "hard", []int32{100}, ptr[int64](2))
	t0 := utc("2027-04-01T10:30:00Z")

	require.True(t, at(t, b.owner, "consume", "c", "f", 1, t0).Allowed)
	v := at(t, b.owner, "consume", "c", "f", 1, t0.Add(24*time.Hour))
	require.True(t, v.Allowed)
	require.EqualValues(t, 2, v.Used)
	requireTime(t, utc("2027-04-03T10:00:00Z"), v.ResetsAt)
	// still within two days of the first call's hour bucket: blocked
	v = at(t, b.owner, "consume", "c", "f", 1, utc("2027-04-03T09:59:59Z"))
	require.False(t, v.Allowed)
	require.EqualValues(t, 2, v.Used)
	// the first bucket has slid out
	v = at(t, b.owner, "consume", "c", "f", 1, utc("2027-04-03T10:00:00Z"))
	require.True(t, v.Allowed)
	require.EqualValues(t, 2, v.Used)
	requireTime(t, utc("2027-04-04T10:00:00Z"), v.ResetsAt)
	require.EqualValues(t, 1, b.count(t, `SELECT count(*) FROM tollgate.events WHERE kind = 'limit_reached'`))

	// refund gives back from the newest bucket
	v = at(t, b.owner, "refund", "c", "f", 5, utc("2027-04-03T10:00:00Z"))
	require.EqualValues(t, 0, v.Used)
}

func TestWindowLifetimeNeverResets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "lifetime", "hard", []int32{100}, ptr[int64](2))
	v := at(t, b.owner, "consume", "c", "f", 1, utc("2027-01-01T00:00:00Z"))
	require.Nil(t, v.ResetsAt)
	v = at(t, b.owner, "consume", "c", "f", 1, utc("2047-01-01T00:00:00Z"))
	require.EqualValues(t, 2, v.Used)
	require.Nil(t, v.ResetsAt)
	require.False(t, at(t, b.owner, "consume", "c", "f", 1, utc("2067-01-01T00:00:00Z")).Allowed)
}

func TestEventsFireOncePerWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.feature(t, "f", "month", "hard", []int32{50, 100}, ptr[int64](2))
	ctx := context.Background()
	for _, month := range []string{"2027-01-10T00:00:00Z", "2027-02-10T00:00:00Z"} {
		for i := 0; i < 4; i++ {
			at(t, b.owner, "consume", "c", "f", 1, utc(month))
		}
		// a refund and a second crossing in the same window fire nothing new
		at(t, b.owner, "refund", "c", "f", 2, utc(month))
		for i := 0; i < 4; i++ {
			at(t, b.owner, "consume", "c", "f", 1, utc(month))
		}
	}
	rows, err := b.owner.Query(ctx, `SELECT kind, threshold, count(*) FROM tollgate.events GROUP BY 1, 2 ORDER BY 1, 2`)
	require.NoError(t, err)
	defer rows.Close()
	type row struct {
		kind      string
		threshold int32
		n         int64
	}
	var got []row
	for rows.Next() {
		var r row
		require.NoError(t, rows.Scan(&r.kind, &r.threshold, &r.n))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []row{{"limit_reached", 100, 2}, {"threshold", 50, 2}, {"threshold", 100, 2}}, got)
}
