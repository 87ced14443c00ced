package citus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/bench"
	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/tests/citustest"
)

// benchDuration is the time per scenario and client count; TOLLGATE_CITUS_BENCH_DURATION sets a longer one
// for the numbers in docs/scaling.md.
func benchDuration() string {
	if d := os.Getenv("TOLLGATE_CITUS_BENCH_DURATION"); d != "" {
		return d
	}
	return "2s"
}

// tollgate bench --database-url runs on the coordinator of a Citus cluster as on a single node, in the same
// run: the scratch database is created on every node and distributed, the scenarios run, and the bench's
// exactness check holds. The ratios (Citus against a single node, same machine, same settings) are logged,
// never asserted: speed is measured, not tested.
func TestBenchOnTheClusterAndASingleNode(t *testing.T) {
	t.Parallel()
	cluster := citustest.Shared(t)
	ctx := context.Background()
	single, err := pgserver.Start(ctx, pgserver.Options{Settings: citustest.Settings})
	require.NoError(t, err)
	t.Cleanup(func() { single.Stop() })

	bin := filepath.Join(t.TempDir(), "tollgate")
	build := exec.Command("go", "build", "-o", bin, "github.com/tollgate/tollgate/cmd/tollgate")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	scenarios := "select1,consume_spread,consume_reject"
	run := func(server string) map[string]bench.Result {
		t.Helper()
		cmdCtx, cancel := context.WithTimeout(ctx, 20*time.Minute)
		defer cancel()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(cmdCtx, bin, "bench", "--database-url", server, "--scenarios", scenarios,
			"--clients", "1,8", "--sync", "off", "--duration", benchDuration(), "--json")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "%s", stderr.String())
		require.Contains(t, stderr.String(), "over-admissions: 0")
		results := map[string]bench.Result{}
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			var r bench.Result
			require.NoError(t, json.Unmarshal([]byte(line), &r), line)
			require.Positive(t, r.Calls, line)
			results[fmt.Sprintf("%s/%d", r.Scenario, r.Clients)] = r
		}
		return results
	}

	// Alternately, twice: a machine shared with other work drifts, and both see the drift alike.
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-5s %-16s %7s %11s %11s %7s %11s %11s %7s\n", "round", "scenario", "clients",
		"single tps", "citus tps", "ratio", "single p50", "citus p50", "ratio")
	for round := 1; round <= 2; round++ {
		one := run(single.URL("postgres"))
		dist := run(cluster.AdminURL)
		for _, sc := range strings.Split(scenarios, ",") {
			for _, n := range []int{1, 8} {
				key := fmt.Sprintf("%s/%d", sc, n)
				a, okA := one[key]
				c, okC := dist[key]
				require.True(t, okA && okC, key)
				fmt.Fprintf(&report, "%-5d %-16s %7d %11.0f %11.0f %7.2f %9.3fms %9.3fms %7.2f\n", round, sc, n,
					a.TPS, c.TPS, c.TPS/a.TPS, a.P50ms, c.P50ms, c.P50ms/a.P50ms)
			}
		}
	}
	t.Log("tollgate bench --sync off, the same run: a single node against the coordinator of a Citus cluster " +
		"(2 workers) on this machine, each node with the same settings" + report.String())
}
