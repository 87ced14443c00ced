package citus

// These tests need no Citus: they check the placement data against a single-node database migrated by
// tollgate migrate, so that a table or function added later cannot go unplaced even where Citus is not
// installed. The tests on a real cluster are in tests/citus.

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	sqlapi "github.com/tollgate/tollgate/sql"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestEveryTableIsPlaced fails when the migrations create a table of schema tollgate that Tables does not
// place (or Tables names one that no longer exists): place it as distributed by customer, reference or
// coordinator, with its reason.
func TestEveryTableIsPlaced(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	rows, err := db.Pool(t).Query(t.Context(), `
	  SELECT c.relname FROM pg_catalog.pg_class c
	   WHERE c.relnamespace = 'tollgate'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
	   ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)

	var placed []string
	for _, tb := range Tables {
		placed = append(placed, tb.Name)
		require.Contains(t, []Placement{Distributed, Reference, Coordinator}, tb.Placement, tb.Name)
		require.NotEmpty(t, tb.Why, "tollgate.%s: say why it is placed so", tb.Name)
	}
	for _, name := range tables {
		require.Contains(t, placed, name,
			"tollgate.%s is not placed for a Citus cluster: add it to internal/citus.Tables (docs/scaling.md)", name)
	}
	for _, name := range placed {
		require.Contains(t, tables, name, "internal/citus.Tables places tollgate.%s, which the migrations do not create", name)
	}
	require.Len(t, slices.Compact(slices.Sorted(slices.Values(placed))), len(placed), "a table is placed twice")
}

// TestDistributedTablesHaveACustomerColumn: a table distributed by customer needs a NOT NULL customer
// column of type text (the type of tollgate.customers.customer, so that co-located rows hash alike).
func TestDistributedTablesHaveACustomerColumn(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	for _, tb := range Tables {
		if tb.Placement != Distributed {
			continue
		}
		var typ string
		var notNull bool
		err := db.Pool(t).QueryRow(t.Context(), `
		  SELECT a.atttypid::regtype::text, a.attnotnull FROM pg_catalog.pg_attribute a
		   WHERE a.attrelid = ('tollgate.' || $1)::regclass AND a.attname = 'customer' AND NOT a.attisdropped`, tb.Name).
			Scan(&typ, &notNull)
		require.NoError(t, err, "tollgate.%s has no customer column", tb.Name)
		require.Equal(t, "text", typ, tb.Name)
		require.True(t, notNull, "tollgate.%s.customer may be NULL", tb.Name)
	}
}

// TestEveryCustomerFunctionIsPlaced fails when a function with an argument named customer is neither
// delegated to the customer's worker nor listed as running on the coordinator, with why.
func TestEveryCustomerFunctionIsPlaced(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	rows, err := db.Pool(t).Query(t.Context(), `
	  SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'tollgate'::regnamespace AND 'customer' = ANY (p.proargnames)
	     AND pg_catalog.array_position(p.proargnames, 'customer') <= p.pronargs -- an input, not an OUT column
	   ORDER BY 1`)
	require.NoError(t, err)
	fns, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, fns)
	for _, fn := range fns {
		_, coordinator := NotDelegated[fn]
		require.True(t, slices.Contains(Delegated, fn) || coordinator,
			"tollgate.%s takes a customer: add it to internal/citus.Delegated, or to NotDelegated with the reason", fn)
	}
	for _, fn := range append(slices.Clone(Delegated), keys(NotDelegated)...) {
		require.Contains(t, fns, fn, "internal/citus names tollgate.%s, which has no customer argument (any more)", fn)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

var replacesLine = regexp.MustCompile(`(?m)^-- replaces (tollgate\.\w+) of (sql/[a-z_]+\.sql) sha256 ([0-9a-f]{64})$`)
var createFunction = regexp.MustCompile(`(?m)^CREATE OR REPLACE FUNCTION (tollgate\.\w+)\(`)

// TestOverridesFollowThePackage fails when a file of sql/ whose function a Citus cluster runs in another
// form (overrides.sql) changed since the override was written: port the change to the override, then
// update the sha256 on its "-- replaces" line.
func TestOverridesFollowThePackage(t *testing.T) {
	t.Parallel()
	replaced := map[string]bool{}
	for _, m := range replacesLine.FindAllStringSubmatch(overridesSQL, -1) {
		fn, file, want := m[1], m[2], m[3]
		b, err := fs.ReadFile(sqlapi.FS, strings.TrimPrefix(file, "sql/"))
		require.NoError(t, err, "%s names %s", fn, file)
		sum := sha256.Sum256(b)
		got := hex.EncodeToString(sum[:])
		require.Equal(t, want, got, "%s changed since its Citus form of %s in internal/citus/overrides.sql was written: "+
			"port the change, then set its sha256 to %s", file, fn, got)
		require.Contains(t, string(b), "CREATE OR REPLACE FUNCTION "+fn+"(", "%s does not define %s", file, fn)
		replaced[fn] = true
	}
	created := createFunction.FindAllStringSubmatch(overridesSQL, -1)
	require.NotEmpty(t, created)
	for _, m := range created {
		require.True(t, replaced[m[1]], "overrides.sql defines %s without a \"-- replaces %s of sql/<file> sha256 <hex>\" line", m[1], m[1])
	}
}

// TestOverridesReplaceOnly: the overrides define no function the package does not (its prune would drop
// it at the next install) and keep each one's signature, return type and security.
func TestOverridesReplaceOnly(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	const catalog = `
	  SELECT coalesce(string_agg(f, E'\n' ORDER BY f), '')
	    FROM (SELECT pg_catalog.format('%s(%s) %s %s %s', p.proname, pg_catalog.pg_get_function_arguments(p.oid),
	                 pg_catalog.pg_get_function_result(p.oid), p.prosecdef, p.proconfig) AS f
	            FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'tollgate'::regnamespace) fns`
	tx, err := db.Pool(t).Begin(t.Context())
	require.NoError(t, err)
	defer tx.Rollback(t.Context())
	var before, after string
	require.NoError(t, tx.QueryRow(t.Context(), catalog).Scan(&before))
	_, err = tx.Exec(t.Context(), overridesSQL)
	require.NoError(t, err)
	require.NoError(t, tx.QueryRow(t.Context(), catalog).Scan(&after))
	require.Equal(t, before, after)
}

func TestNodeURL(t *testing.T) {
	t.Parallel()
	n := Node{Group: 1, Host: "10.0.0.2", Port: 5433}
	got, err := NodeURL("postgres://owner:s3cret@coord:5432/app?sslmode=disable&application_name=x", n, "scratch")
	require.NoError(t, err)
	require.Equal(t, "postgres://owner:s3cret@10.0.0.2:5433/scratch?application_name=x&sslmode=disable", got)

	got, err = NodeURL("user=owner password='a b' host=coord dbname=app", n, "it's")
	require.NoError(t, err)
	cfg, err := pgx.ParseConfig(got)
	require.NoError(t, err)
	require.Equal(t, "10.0.0.2", cfg.Host)
	require.EqualValues(t, 5433, cfg.Port)
	require.Equal(t, "it's", cfg.Database)
	require.Equal(t, "a b", cfg.Password)

	_, err = NodeURL("mysql://x", n, "d")
	require.Error(t, err)
}

// TestScalingDocPlacesEveryTable: docs/scaling.md shows the placement of every table as Tables has it.
func TestScalingDocPlacesEveryTable(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/scaling.md")
	require.NoError(t, err)
	rows := regexp.MustCompile(`(?m)^\| tollgate\.(\w+) \| (\w+) \|`).FindAllStringSubmatch(string(doc), -1)
	inDoc := map[string]string{}
	for _, r := range rows {
		inDoc[r[1]] = r[2]
	}
	for _, tb := range Tables {
		require.Equal(t, string(tb.Placement), inDoc[tb.Name], "docs/scaling.md: the placement of tollgate.%s", tb.Name)
	}
	require.Len(t, inDoc, len(Tables), "docs/scaling.md places a table that internal/citus.Tables does not")
}
