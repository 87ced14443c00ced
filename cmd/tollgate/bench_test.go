package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/bench"
	"github.com/tollgate/tollgate/tests/pgtest"
)

// The bench runs every scenario, reports one JSON object per result and the
// ratios, and checks exactness. Speed itself is never asserted here.
func TestBenchRunsEveryScenario(t *testing.T) {
	t.Parallel()
	server := pgtest.NewEmptyDB(t).URL
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--database-url", server, "--clients", "1,2",
		"--duration", "100ms", "--sync", "off", "--json"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())

	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var r bench.Result
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		require.Positive(t, r.Calls, line)
		require.Positive(t, r.TPS, line)
		require.LessOrEqual(t, r.P50ms, r.P99ms, line)
		require.Equal(t, "off", r.SyncCommit)
		seen[r.Scenario] = true
	}
	for _, sc := range bench.Scenarios {
		require.True(t, seen[sc.Name], "scenario %s did not run", sc.Name)
	}
	require.Contains(t, stderr.String(), "consume_spread / upsert_function p50 latency")
	require.Contains(t, stderr.String(), "exactness")
}

func TestBenchRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--clients", "0"}, {"--clients", "x"}, {"--sync", "maybe"}, {"--duration", "0s"}, {"--scenarios", "nope"}, {"extra"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(context.Background(), append([]string{"bench"}, args...), &stdout, &stderr), args)
	}
}

func TestRatiosNeedTheirResults(t *testing.T) {
	t.Parallel()
	results := []bench.Result{
		{Scenario: "consume_spread", Clients: 1, SyncCommit: "off", TPS: 100, P50ms: 1.1, Calls: 10},
		{Scenario: "upsert_function", Clients: 1, SyncCommit: "off", TPS: 120, P50ms: 1.0, Calls: 10},
	}
	ratios := bench.Ratios(results)
	require.Equal(t, "consume_spread / upsert_function p50 latency, 1 client, sync off", ratios[0].Name)
	require.InDelta(t, 1.1, ratios[0].Value, 1e-9)
	require.True(t, ratios[0].Met) // target <= 1.15
	for _, r := range ratios[1:] {
		require.True(t, r.Missing, r.Name)
	}
}

func TestContextRatiosSayWhatTheyStandFor(t *testing.T) {
	t.Parallel()
	results := []bench.Result{
		{Scenario: "upsert_function", Clients: 8, SyncCommit: "off", TPS: 90, Calls: 10},
		{Scenario: "upsert_spread", Clients: 8, SyncCommit: "off", TPS: 100, Calls: 10},
	}
	ctx := bench.Context(results)
	found := false
	for _, r := range ctx {
		require.NotEmpty(t, r.Note, r.Name)
		require.False(t, r.Met, r.Name)
		if r.Name == "upsert_function / upsert_spread tps, 8 clients, sync off" {
			found = true
			require.False(t, r.Missing)
			require.InDelta(t, 0.9, r.Value, 1e-9)
		} else {
			require.True(t, r.Missing, r.Name)
		}
	}
	require.True(t, found)
}
