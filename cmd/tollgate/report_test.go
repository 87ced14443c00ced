package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/funnel"
	"github.com/tollgate/tollgate/internal/funnel/funneltest"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func report(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := reportCmd(t.Context(), args, &stdout, &stderr, func(k string) string { return env[k] }, time.Now)
	return code, stdout.String(), stderr.String()
}

func TestReportFormats(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	funneltest.Seed(t, db.Pool(t))
	env := map[string]string{"DATABASE_URL": db.SidecarURL}

	code, out, errOut := report(t, env)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(out, "\n")
	require.Contains(t, lines[0], "Conversion funnel")
	fields := map[string][]string{}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 {
			fields[f[0]] = f
		}
	}
	for name, want := range funneltest.Want {
		require.Equal(t, []string{name, itoa(want[0]), itoa(want[1]), itoa(want[2]), itoa(want[3]), itoa(want[4]), itoa(want[5]), itoa(want[6])},
			fields[name][:8], name)
	}
	require.Equal(t, []string{"30.0%", "3h", "30m", "5h", "30m"}, fields["api"][8:])
	// the experiment: control 8/100, short 25/100; short wins
	require.Contains(t, out, "Prompt experiment on search")
	require.Regexp(t, `control\s+50\s+100\s+100\s+20\s+8\s+8\.0%\s+4\.1%–15\.0%\s*\n`, out)
	require.Regexp(t, `short\s+50\s+100\s+100\s+40\s+25\s+25\.0%\s+17\.5%–34\.3%\s+\+17\.0 pts\s+p = 0\.001\s*\n`, out)
	require.Contains(t, out, "Winner: short (significant at p < 0.05)")
	require.Contains(t, out, "Trials that ended in the range: 2, 1 converted to paid (50.0%)\n")
	require.Contains(t, out, "Needs attention:\n  1 upgrade prompt given up")
	require.Contains(t, out, "2 Stripe subscriptions giving nobody a plan:")
	require.Regexp(t, `sub_odd\s+cus_nobody\s+trialing\s+no customer, no plan\s+items: price_odd`, out)
	require.Contains(t, out, "1 top-up purchase waiting for their customer")
	require.Regexp(t, `in_waiting\s+cus_nobody\s+\S+ \S+ UTC\s+items: price_calls50 x2`, out)

	code, out, errOut = report(t, env, "--format", "json", "--since", "7d")
	require.Equal(t, 0, code, errOut)
	var doc struct {
		Since, Until time.Time
		Funnel       []funnel.Row
		Experiments  []funnel.Experiment
		Trials       funnel.Trials
		DeadEmails   int64 `json:"dead_emails"`
		Attention    funnel.Attention
	}
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	require.WithinDuration(t, time.Now().AddDate(0, 0, -7), doc.Since, time.Minute)
	require.Len(t, doc.Funnel, 4)
	for _, r := range doc.Funnel {
		want := funneltest.Want[r.Name()]
		if r.Feature == "search" || r.Total {
			continue // search is partly older than 7 days
		}
		require.Equal(t, want, [7]int64{r.HitThreshold, r.HitLimit, r.Prompted, r.Clicked, r.Converted, r.Attributed, r.Organic}, r.Name())
	}
	require.True(t, doc.Funnel[3].Total)
	require.Len(t, doc.Experiments, 1)
	require.Equal(t, "search", doc.Experiments[0].Feature)
	require.Len(t, doc.Experiments[0].Variants[0].Timeline, 7, "a point a day")
	require.EqualValues(t, 1, doc.DeadEmails)
	require.Len(t, doc.Attention.Unmapped, 2)
	require.Len(t, doc.Attention.WaitingTopups, 1)
	require.Equal(t, "in_waiting", doc.Attention.WaitingTopups[0].StripeObject)

	code, out, errOut = report(t, env, "--format=csv")
	require.Equal(t, 0, code, errOut)
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, csvHeader, records[0])
	require.Len(t, records, 5)
	require.Equal(t, []string{"(total)", "252", "235", "229", "68", "45", "41", "4"}, records[4][:8])
	require.Equal(t, "0.3", records[1][8])
	require.Equal(t, "12600", records[1][9])
	require.Contains(t, errOut, "Prompt experiment on search")
	require.Contains(t, errOut, "1 upgrade prompt given up") // stdout stays CSV

	// a range without events: the total row, all zero; nothing new needs attention
	code, out, errOut = report(t, env, "--since", "2000-01-01", "--until", "2000-01-31", "--format", "csv")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, strings.Join(csvHeader, ",")+"\n(total),0,0,0,0,0,0,0,,,\n", out)
}

func TestReportNothingNeedsAttention(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	code, out, errOut := report(t, map[string]string{}, "--database-url", db.SidecarURL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "Nothing needs attention")
}

func TestReportArguments(t *testing.T) {
	t.Parallel()
	none := map[string]string{}
	for _, args := range [][]string{
		{}, // no database
		{"--format", "xml", "--database-url", "postgres://x"},
		{"--since", "yesterday", "--database-url", "postgres://x"},
		{"--since", "1d", "--until", "2d", "--database-url", "postgres://x"},
		{"extra", "--database-url", "postgres://x"},
		{"--database-url", "postgres://u:hunter2@[::1"},
	} {
		code, _, errOut := report(t, none, args...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
		require.NotContains(t, errOut, "hunter2")
	}
	code, out, _ := report(t, none, "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "usage: tollgate report")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The app's role (a member of tollgate_app only) may not read the funnel: report says which role it needs.
func TestReportWithTheAppsRole(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	code, _, errOut := report(t, map[string]string{"DATABASE_URL": db.AppURL})
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "tollgate_sidecar")
	require.NotContains(t, errOut, pgtest.AppRole+":"+pgtest.AppRole) // no password
}
