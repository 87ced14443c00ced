package apply

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/tests/pgtest"
)

// processTB is the testing.TB of the first fuzz input in a fuzzing worker, for what lives as long as the worker
// process (one database each): its cleanups are dropped, and the process's PostgreSQL goes with the process
// (with TOLLGATE_TEST_DATABASE_URL, the worker's database stays on that server).
type processTB struct{ testing.TB }

func (processTB) Cleanup(func()) {}

// fuzzing reports whether this process runs `go test -fuzz` (as its coordinator or a worker) rather than the
// seeds as an ordinary test.
func fuzzing() bool {
	fl := flag.Lookup("test.fuzz")
	return fl != nil && fl.Value.String() != ""
}

var fuzzDB struct {
	once sync.Once
	pool *pgxpool.Pool
}

// fuzzDatabase is a pool on a migrated database shared by the inputs of one fuzzing worker, made at its first
// input (never in the coordinating process, which runs no input).
func fuzzDatabase(t *testing.T) *pgxpool.Pool {
	fuzzDB.once.Do(func() { fuzzDB.pool = pgtest.NewDB(processTB{t}).Pool(processTB{t}) })
	if fuzzDB.pool == nil {
		t.Fatal("no database: the first input failed to make one")
	}
	return fuzzDB.pool
}

// noisyPath is n bytes of path that do not compress (an index entry of it takes its full size).
func noisyPath(n int) string {
	var b strings.Builder
	x := uint32(2463534242)
	for b.Len() < n-1 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b.WriteByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"[x%64])
	}
	return b.String()
}

var diagnosticRE = regexp.MustCompile(`^f\.yaml:[1-9][0-9]*:[1-9][0-9]*: `)

// FuzzApply applies any file with --dry-run --prune against a real database, and holds `tollgate apply` to its
// promise: a file the check accepts is one the database accepts (whatever the SQL functions check), and a file
// it refuses is reported as FILE:LINE:COL lines with nothing written (exit 1). `make test` runs it for a few
// seconds, `make fuzz` longer; the seeds run as an ordinary test.
func FuzzApply(f *testing.F) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	const plans = "plans:\n  free: { default: true }\n  pro: { stripe_prices: [price_1], stripe_products: [prod_1], rank: 2147483647 }\n"
	for _, s := range []string{
		plans + "features:\n  a: { period: 999999d, limits: { free: 9223372036854775807, pro: unlimited }, notify_at: [1, 100] }\n",
		plans + "features:\n  a: { period: 999999h, limits: { free: 0 }, enforcement: soft }\n  b: { period: rolling 9999d, limits: { pro: 1 } }\n",
		plans + "features:\n  a: { period: 1000000d, limits: { free: 1 } }\n",
		plans + "features:\n  a: { period: month, limits: {} }\n",
		plans + "features:\n  a: { period: billing, limits: { free: 1 }, message: \"x\\0y\", routes: [\"* /a/*\"] }\n",
		plans + "features:\n  a: { limits: { free: on }, routes: [\"GET /" + strings.Repeat("p", 3000) + "\"] }\n",
		plans + "features:\n  a: { limits: { free: on }, routes: [\"GET /" + noisyPath(1000) + "\"] }\n",
		plans + "stripe: { past_due_is_grace: true, pause_collection_keeps_plan: true, trial_prompt: { email: trial_ending } }\n",
		plans + "conversions: { attribution_window: 1ns }\n",
		plans + "conversions: { attribution_window: 106751d }\n",
		"plans: { free: { default: true } }\nfeatures: { \"a\": { limits: { free: 1 }, period: 12h, upgrade_prompt: { email: a } } }\n",
		plans + "features:\n  a: { period: month, limits: { free: 1 } }\ntopups:\n  p: { stripe_price: price_" + strings.Repeat("x", 249) + ", feature: a, amount: 9223372036854775807, expires: 1s }\n  q: { stripe_price: price_q, feature: a, amount: 1, expires: 106751d }\n",
		plans + "features:\n  a: { period: month, limits: { free: 1 }, upgrade: { plan: pro, price: price_1 },\n    upgrade_prompt: { variants: { control: { weight: 1000000 }, b: { weight: 0, message: \"" + strings.Repeat("é", 10000) + "\", email: z } } } }\nemail: { upgrade_url: https://a.test }\nupgrade_links: { public_url: https://b.test, expires: 366d }\n",
	} {
		f.Add([]byte(s))
	}
	var seedPool *pgxpool.Pool
	if !fuzzing() {
		db := pgtest.NewDB(f) // the seeds, as an ordinary test: cleaned up with f
		seedPool = db.Pool(f)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, parseErr := config.Parse("f.yaml", data)
		if parseErr == nil {
			pool := seedPool
			if pool == nil {
				pool = fuzzDatabase(t)
			}
			// what `tollgate apply --dry-run --prune` does with it, on a connection kept across inputs
			if _, err := Apply(t.Context(), pool, cfg, Options{DryRun: true, Prune: true}, io.Discard); err != nil {
				t.Fatalf("the file check accepted the file, the database refused it:\n%s\nfile:\n%q", describe(err), data)
			}
			return
		}
		// a refused file never reaches the database
		path := filepath.Join(t.TempDir(), "f.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		code := run(t.Context(), []string{path, "--dry-run", "--prune", "--database-url", "postgres://nobody@127.0.0.1:1/none"},
			&out, &errOut, func(string) string { return "" })
		var errs config.Errors
		if !errors.As(parseErr, &errs) {
			t.Fatalf("not config.Errors: %v", parseErr)
		}
		if code != 1 || out.Len() != 0 {
			t.Fatalf("a refused file: exit %d, stdout %q", code, out.String())
		}
		lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
		for _, l := range lines[:len(lines)-1] {
			if !diagnosticRE.MatchString(strings.ReplaceAll(l, path, "f.yaml")) {
				t.Fatalf("a mistake reported without FILE:LINE:COL: %q", l)
			}
		}
		if !strings.HasSuffix(lines[len(lines)-1], "nothing written") {
			t.Fatalf("last line %q", lines[len(lines)-1])
		}
	})
}
