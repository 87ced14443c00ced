package djangotest

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/tests/pgtest"
)

// benchScenarios are the rows django/bench/gate_cost.py prints, in order.
var benchScenarios = []string{"plain", "gate", "gate_async", "write", "gate_write", "gate_write_async", "route_write",
	"atomic_write", "atomic_gate_write", "atomic_route_write", "inline_write", "inline_consume_write"}

// runGateCost runs django/bench/gate_cost.py and returns what it printed.
func runGateCost(t testing.TB, python, appURL, ownerURL string, args ...string) string {
	t.Helper()
	script, err := filepath.Abs("../../django/bench/gate_cost.py")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{script, "--database-url", appURL, "--owner-url", ownerURL}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gate_cost.py: %v\n%s", err, out)
	}
	return string(out)
}

// checkGateCostTable checks that out is the script's table: its header and one row per scenario, in order,
// each with a p50 and, but for baselines, the added cost and ratio.
func checkGateCostTable(t testing.TB, out string) {
	t.Helper()
	var rows [][]string
	header := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "scenario" {
			header = strings.Contains(line, "p50 ms") && strings.Contains(line, "added p50 ms")
			continue
		}
		if header && len(f) > 0 {
			rows = append(rows, f)
		}
	}
	if !header || len(rows) != len(benchScenarios) {
		t.Fatalf("gate_cost.py printed no table of %d scenarios:\n%s", len(benchScenarios), out)
	}
	for i, r := range rows {
		if r[0] != benchScenarios[i] {
			t.Fatalf("row %d is %q, want %q:\n%s", i, r[0], benchScenarios[i], out)
		}
	}
}

// The benchmark script runs and prints its table (a few requests on the test cluster: its numbers mean
// nothing here; BenchmarkGateCost measures).
func TestGateCostScript(t *testing.T) {
	t.Parallel()
	python := findPython(t)
	db := pgtest.NewDB(t)
	db.Exec(t, `SELECT tollgate.define_plan('free', is_default => true)`)
	out := runGateCost(t, python, db.AppURL, db.URL, "--requests", "20", "--rounds", "2", "--customers", "10")
	checkGateCostTable(t, out)
	// the bench cleans up after itself
	var left int
	if err := db.Pool(t).QueryRow(t.Context(), `SELECT count(*) FROM tollgate.features WHERE feature = 'bench_calls'`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("the bench left its feature behind")
	}
}

// BenchmarkGateCost runs django/bench/gate_cost.py with its defaults on a throwaway PostgreSQL on disk
// with fsync on (a commit costs what it costs in production) and logs its table:
//
//	go test -run '^$' -bench GateCost -benchtime 1x ./tests/django
func BenchmarkGateCost(b *testing.B) {
	python := findPython(b)
	ctx := context.Background()
	srv, err := pgserver.Start(ctx, pgserver.Options{TempRoot: os.TempDir(),
		Settings: map[string]string{"fsync": "on", "full_page_writes": "on"}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	owner, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	defer owner.Close(ctx)
	if _, err := schema.Migrate(ctx, owner, schema.Latest, io.Discard); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		`CREATE ROLE tollgate_bench_app LOGIN PASSWORD 'bench' IN ROLE tollgate_app`,
		`SELECT tollgate.define_plan('free', is_default => true)`,
	} {
		if _, err := owner.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	app, err := url.Parse(srv.URL("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	app.User = url.UserPassword("tollgate_bench_app", "bench")
	for i := 0; i < b.N; i++ {
		out := runGateCost(b, python, app.String(), srv.URL("postgres"))
		checkGateCostTable(b, out)
		fmt.Println(out) // b.Log would cut the table short

	}
}
