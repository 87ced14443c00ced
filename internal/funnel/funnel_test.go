package funnel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRange(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 15, 12, 30, 0, 0, time.UTC)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		since, until string
		from, to     time.Time
	}{
		{"", "", now.AddDate(0, 0, -30), now},
		{"7d", "now", now.AddDate(0, 0, -7), now},
		{"12h", "", now.Add(-12 * time.Hour), now},
		{"1h30m", "30m", now.Add(-90 * time.Minute), now.Add(-30 * time.Minute)},
		{"2025-01-01", "2025-01-31", day(2025, 1, 1), day(2025, 2, 1)}, // a date as until: the whole day
		{"2025-03-01T10:00:00+02:00", "2025-03-02T00:00:00Z", time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC), day(2025, 3, 2)},
	} {
		from, to, err := ParseRange(tc.since, tc.until, now)
		require.NoError(t, err, "%q %q", tc.since, tc.until)
		require.True(t, tc.from.Equal(from), "%q: %s", tc.since, from)
		require.True(t, tc.to.Equal(to), "%q: %s", tc.until, to)
	}
	for _, tc := range [][2]string{{"yesterday", ""}, {"-5d", ""}, {"30", ""}, {"1d", "2d"}, {"2025-02-01", "2025-01-01"},
		{"", "2000-01-01"}, {"0s", ""}, {"2025-13-01", ""}} {
		_, _, err := ParseRange(tc[0], tc[1], now)
		require.ErrorIs(t, err, ErrBadRange, "%q %q", tc[0], tc[1])
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for s, want := range map[float64]string{0: "0s", 59.4: "59s", 61: "1m 1s", 3600: "1h 0m", 12600: "3h 30m",
		90000: "1d 1h", 30 * 86400: "30d 0h"} {
		require.Equal(t, want, FormatSeconds(&s), s)
	}
	require.Equal(t, "n/a", FormatSeconds(nil))
	require.Equal(t, "n/a", FormatRate(nil))
	rate := 0.125
	require.Equal(t, "12.5%", FormatRate(&rate))
	require.Equal(t, "(total)", Row{Total: true}.Name())
	require.Equal(t, "api", Row{Feature: "api"}.Name())
}

func TestWinner(t *testing.T) {
	t.Parallel()
	f := func(v float64) *float64 { return &v }
	v := func(name string, rate, diff float64, significant bool) Variant {
		if name == "control" {
			return Variant{Variant: name, Rate: f(rate)}
		}
		return Variant{Variant: name, Rate: f(rate), Difference: f(diff), Significant: significant}
	}
	for want, vs := range map[string][]Variant{
		"short":   {v("control", .1, 0, false), v("short", .3, .2, true)},
		"":        {v("control", .1, 0, false), v("short", .12, .02, false)},
		"long":    {v("control", .1, 0, false), v("long", .4, .3, true), v("short", .3, .2, true)},
		"control": {v("control", .3, 0, false), v("long", .1, -.2, true), v("short", .05, -.25, true)},
	} {
		require.Equal(t, want, Winner(vs), "%+v", vs)
	}
	// control beats one, the other is not significant: no winner
	require.Equal(t, "", Winner([]Variant{v("control", .3, 0, false), v("long", .1, -.2, true), v("short", .28, -.02, false)}))
	require.Equal(t, "", Winner([]Variant{v("control", .3, 0, false)}))
	require.Equal(t, "p < 0.001", FormatP(f(0.0004)))
	require.Equal(t, "p = 0.012", FormatP(f(0.01242)))
	require.Equal(t, "+17.0 pts", FormatDifference(f(0.17)))
	require.Equal(t, "4.3%–21.4%", FormatInterval(f(0.04348), f(0.2136)))
}
