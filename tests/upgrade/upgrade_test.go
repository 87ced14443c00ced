// Package upgrade_test upgrades the schema of every release to head.
//
// testdata/v<VERSION>.sql is a release fixture: a pg_dump of a database freshly migrated by that
// release, written on the tagged commit by `make release-fixture VERSION=<VERSION>`. Each is restored
// into an empty database and migrated with schema.Migrate, as `tollgate migrate` would on an operator's
// database; the result must be the schema of a fresh install, and work.
package upgrade_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixtures are the release fixtures, by version ("0.1.0").
func fixtures(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("testdata/v*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no release fixture in testdata: make release-fixture VERSION=x.y.z writes one")
	out := map[string]string{}
	for _, p := range paths {
		out[strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "v"), ".sql")] = p
	}
	return out
}

// restore loads a fixture into db with psql, stopping at the first error.
func restore(t *testing.T, db *pgtest.DB, fixture string) {
	t.Helper()
	cmd := exec.Command(pgtest.Server(t).Bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", fixture, "--dbname", db.URL)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "psql -f %s:\n%s", fixture, out)
}

// dump is the whole database's schema, normalized (both schemas: tollgate and tern's version table).
func dump(t *testing.T, db *pgtest.DB) string {
	t.Helper()
	out, err := schema.PgDump(t.Context(), pgtest.Server(t).Bin("pg_dump"), db.URL, "--schema-only", "--no-owner")
	require.NoError(t, err)
	return schema.NormalizeDump(out)
}

type fresh struct {
	dump   string
	sha    string
	latest int32
}

// freshInstall is what a fresh install gives: pgtest's template is migrated by schema.Migrate. It also
// makes sure the roles tollgate grants to, and the tests' login roles, exist in the cluster: a fixture
// holds no roles (they are cluster-wide), as an operator's database finds them there.
func freshInstall(t *testing.T) fresh {
	t.Helper()
	db := pgtest.NewDB(t)
	sha, err := schema.InstalledCodeSHA256(t.Context(), db.Pool(t))
	require.NoError(t, err)
	latest, err := schema.LatestVersion()
	require.NoError(t, err)
	return fresh{dump: dump(t, db), sha: sha, latest: latest}
}

// upgrade restores a fixture into a new database and migrates it to head.
func upgrade(t *testing.T, fixture string, before func(conn *pgx.Conn)) (*pgtest.DB, schema.Result, string) {
	t.Helper()
	db := pgtest.NewEmptyDB(t)
	restore(t, db, fixture)
	conn := db.Conn(t, db.URL)
	v, err := schema.CurrentVersion(t.Context(), conn)
	require.NoError(t, err)
	require.Positive(t, v, "the fixture has a schema version")
	if before != nil {
		before(conn)
	}
	var out bytes.Buffer
	res, err := schema.Migrate(t.Context(), conn, schema.Latest, &out)
	require.NoError(t, err, "migrating the release to head:\n%s", out.String())
	return db, res, out.String()
}

func TestUpgradeFromEachRelease(t *testing.T) {
	t.Parallel()
	want := freshInstall(t)
	for version, fixture := range fixtures(t) {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			db, res, out := upgrade(t, fixture, nil)
			t.Logf("upgrade from %s:\n%s", version, out)
			require.Equal(t, want.latest, res.To)
			sha, err := schema.InstalledCodeSHA256(t.Context(), db.Pool(t))
			require.NoError(t, err)
			require.Equal(t, want.sha, sha, "head's code package is installed")
			requireSameSchema(t, want.dump, dump(t, db), version)
			smoke(t, db)
		})
	}
}

// The comparison catches what a release left behind: a function a release's package defined and head's
// does not is dropped by the upgrade, so the schema still equals a fresh install's.
func TestUpgradeDropsWhatTheReleaseDefinedAndHeadDoesNot(t *testing.T) {
	t.Parallel()
	want := freshInstall(t)
	for version, fixture := range fixtures(t) {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			db, res, _ := upgrade(t, fixture, func(conn *pgx.Conn) {
				// As if the release's package had a function head's no longer has.
				for _, q := range []string{
					"CREATE FUNCTION tollgate.zz_removed_since(n integer) RETURNS integer LANGUAGE sql AS 'SELECT n'",
					"REVOKE ALL ON FUNCTION tollgate.zz_removed_since(integer) FROM PUBLIC",
					"UPDATE tollgate.code_package SET sha256 = repeat('0', 64)",
				} {
					_, err := conn.Exec(t.Context(), q)
					require.NoError(t, err, q)
				}
			})
			require.True(t, res.Code.Installed)
			require.Contains(t, res.Code.Dropped, "tollgate.zz_removed_since(n integer)")
			requireSameSchema(t, want.dump, dump(t, db), version)
		})
	}
}

func requireSameSchema(t *testing.T, want, got, version string) {
	t.Helper()
	if got == want {
		return
	}
	wantLines, gotLines := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wantLines) && i < len(gotLines); i++ {
		if wantLines[i] != gotLines[i] {
			from := max(0, i-5)
			t.Fatalf("release %s upgraded to head differs from a fresh install at line %d:\nfresh:\n%s\nupgraded:\n%s",
				version, i+1, strings.Join(wantLines[from:min(len(wantLines), i+10)], "\n"),
				strings.Join(gotLines[from:min(len(gotLines), i+10)], "\n"))
		}
	}
	t.Fatalf("release %s upgraded to head differs from a fresh install: %d lines, a fresh install has %d", version, len(gotLines), len(wantLines))
}

// smoke defines a plan and a feature as the owner and consumes as the app's role (a member of
// tollgate_app only), up to the limit and past it; the app's role still cannot read the tables.
func smoke(t *testing.T, db *pgtest.DB) {
	t.Helper()
	ctx := t.Context()
	owner := db.Conn(t, db.URL)
	for _, q := range []string{
		`SELECT tollgate.define_plan('free', true)`,
		`SELECT tollgate.define_feature('api_calls', 'month')`,
		`SELECT tollgate.set_limit('free', 'api_calls', 2)`,
	} {
		_, err := owner.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	app := db.Conn(t, db.AppURL)
	for i, want := range []bool{true, true, false} {
		var allowed bool
		var used int64
		require.NoError(t, app.QueryRow(ctx, `SELECT allowed, used FROM tollgate.consume('user-1', 'api_calls', 1)`).Scan(&allowed, &used))
		require.Equal(t, want, allowed, "call %d", i+1)
		require.Equal(t, int64(min(i+1, 2)), used, "call %d", i+1)
	}
	// and the tables stay private to the owner
	_, err := app.Exec(ctx, `SELECT FROM tollgate.usage`)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "42501", pe.Code, "insufficient_privilege")
}
