package schema_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/migrations"
	sqlapi "github.com/tollgate/tollgate/sql"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type testBundle struct {
	db     *pgtest.DB
	conn   *pgx.Conn
	latest int32
}

// setup gives the test an empty database and an owner connection to it.
func setup(t *testing.T) *testBundle {
	t.Helper()
	db := pgtest.NewEmptyDB(t)
	latest, err := schema.LatestVersion()
	require.NoError(t, err)
	require.Positive(t, latest)
	return &testBundle{db: db, conn: db.Conn(t, db.URL), latest: latest}
}

// migrated is setup with the database migrated to the latest version.
func migrated(t *testing.T) *testBundle {
	t.Helper()
	b := setup(t)
	_, err := schema.Migrate(t.Context(), b.conn, schema.Latest, nil)
	require.NoError(t, err)
	return b
}

func (b *testBundle) version(t *testing.T) int32 {
	t.Helper()
	v, err := schema.CurrentVersion(t.Context(), b.conn)
	require.NoError(t, err)
	return v
}

// installed is the sha256 the database recorded for its code package ("" for none).
func (b *testBundle) installed(t *testing.T) string {
	t.Helper()
	sha, err := schema.InstalledCodeSHA256(t.Context(), b.conn)
	require.NoError(t, err)
	return sha
}

// functions counts the functions of schema tollgate.
func (b *testBundle) functions(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.conn.QueryRow(t.Context(),
		"SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'tollgate'").Scan(&n))
	return n
}

// migrateCode migrates to the latest version with the embedded migrations and the code package code.
func (b *testBundle) migrateCode(t *testing.T, code fs.FS) (schema.Result, error) {
	t.Helper()
	return schema.MigrateFS(t.Context(), b.conn, migrations.FS, code, schema.Latest, nil)
}

func exists(t *testing.T, conn *pgx.Conn, query string, args ...any) bool {
	t.Helper()
	var ok bool
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT EXISTS ("+query+")", args...).Scan(&ok))
	return ok
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Zero(t, b.version(t), "an empty database is at version 0")
	sha, err := schema.CodeSHA256()
	require.NoError(t, err)
	require.Regexp(t, "^[0-9a-f]{64}$", sha)

	var out bytes.Buffer
	res, err := schema.Migrate(t.Context(), b.conn, schema.Latest, &out)
	require.NoError(t, err)
	require.Equal(t, int32(0), res.From)
	require.Equal(t, b.latest, res.To)
	require.Len(t, res.Applied, int(b.latest))
	for i, step := range res.Applied {
		require.Equal(t, int32(i+1), step.Sequence)
		require.Equal(t, "up", step.Direction)
		require.Contains(t, out.String(), "migrating "+step.Name+" up\n")
	}
	require.True(t, res.Code.Installed, "the code package is installed after the migrations")
	require.Empty(t, res.Code.Dropped)
	require.Equal(t, sha, res.Code.SHA256)
	require.Less(t, strings.Index(out.String(), "migrating "+res.Applied[len(res.Applied)-1].Name),
		strings.Index(out.String(), fmt.Sprintf("installing code package sql/ (sha256 %s)\n", sha[:12])),
		"the package is installed after the last migration")
	require.Contains(t, out.String(), fmt.Sprintf("migrated from version 0 to %d\ncode package sql/ installed (sha256 %s)\n", b.latest, sha[:12]))
	require.Equal(t, b.latest, b.version(t))
	require.Equal(t, sha, b.installed(t), "the package recorded the hash Migrate computed")

	out.Reset()
	res, err = schema.Migrate(t.Context(), b.conn, schema.Latest, &out)
	require.NoError(t, err)
	require.Empty(t, res.Applied)
	require.False(t, res.Code.Installed, "an unchanged package is not installed again")
	require.Equal(t, fmt.Sprintf("already at version %d with code package sql/ (sha256 %s), nothing to do\n", b.latest, sha[:12]), out.String())
}

func TestSecondDatabaseInClusterMigrates(t *testing.T) {
	t.Parallel()
	// The roles are cluster-wide: the second database finds them already there.
	first, second := setup(t), setup(t)
	for _, b := range []*testBundle{first, second} {
		_, err := schema.Migrate(t.Context(), b.conn, schema.Latest, nil)
		require.NoError(t, err)
		require.Equal(t, b.latest, b.version(t))
		require.True(t, exists(t, b.conn, "SELECT FROM pg_proc WHERE oid = 'tollgate.consume'::regproc"))
	}
}

func TestDownToZeroAndUpAgain(t *testing.T) {
	t.Parallel()
	b := migrated(t)
	ctx := t.Context()

	var out bytes.Buffer
	res, err := schema.Migrate(ctx, b.conn, 0, &out)
	require.NoError(t, err)
	require.Equal(t, int32(0), res.To)
	require.Len(t, res.Applied, int(b.latest))
	for _, step := range res.Applied {
		require.Equal(t, "down", step.Direction)
	}
	require.True(t, res.Code.Removed)
	require.Less(t, strings.Index(out.String(), "removed the code package: "), strings.Index(out.String(), "migrating "),
		"the functions go before the tables they use")
	require.Zero(t, b.version(t))
	require.False(t, exists(t, b.conn, "SELECT FROM pg_namespace WHERE nspname = 'tollgate'"), "schema tollgate is gone")
	require.Zero(t, b.functions(t))
	require.False(t, exists(t, b.conn, "SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'tollgate'"))
	for _, role := range []string{"tollgate_app", "tollgate_sidecar"} {
		require.True(t, exists(t, b.conn, "SELECT FROM pg_roles WHERE rolname = $1", role), "role %s stays: roles are cluster-wide", role)
	}
	require.Empty(t, b.installed(t))

	res, err = schema.Migrate(ctx, b.conn, schema.Latest, nil)
	require.NoError(t, err)
	require.Equal(t, b.latest, res.To)
	require.True(t, res.Code.Installed)
	require.True(t, exists(t, b.conn, "SELECT FROM pg_proc WHERE oid = 'tollgate.consume'::regproc"))
}

func TestMigrateToEachVersionAndBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for v := int32(1); v <= b.latest; v++ {
		res, err := schema.Migrate(t.Context(), b.conn, v, nil)
		require.NoError(t, err, "up to %d", v)
		require.Equal(t, v, b.version(t))
		// The code package needs the latest schema: it is installed there and only there.
		require.Equal(t, v == b.latest, res.Code.Installed, "version %d", v)
		require.Equal(t, v == b.latest, b.functions(t) > 0, "version %d", v)
	}
	for v := b.latest - 1; v >= 0; v-- {
		res, err := schema.Migrate(t.Context(), b.conn, v, nil)
		require.NoError(t, err, "down to %d", v)
		require.Equal(t, v, b.version(t))
		require.Equal(t, v == b.latest-1, res.Code.Removed, "version %d", v)
		require.Zero(t, b.functions(t), "version %d", v)
	}
}

func TestTargetOutOfRange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := schema.Migrate(t.Context(), b.conn, b.latest+1, nil)
	require.Error(t, err)
	require.Zero(t, b.version(t))
}

func TestNewerDatabaseIsLeftAlone(t *testing.T) {
	t.Parallel()
	b := migrated(t)
	sha, functions := b.installed(t), b.functions(t)
	// A database migrated by a newer tollgate: this one neither goes down nor installs its package.
	_, err := b.conn.Exec(t.Context(), "UPDATE public.schema_version SET version = $1", b.latest+1)
	require.NoError(t, err)
	code := codeWith(t, map[string]string{"probe.sql": probeInt})
	_, err = b.migrateCode(t, code)
	require.ErrorContains(t, err, "newer than this tollgate")
	require.Equal(t, b.latest+1, b.version(t))
	require.Equal(t, sha, b.installed(t))
	require.Equal(t, functions, b.functions(t))
}

// A database at the latest version without the record of its package was migrated by a build whose
// migration 6 was another (only development databases): Migrate says so and changes nothing.
func TestLatestVersionWithoutThePackageRecordIsRefused(t *testing.T) {
	t.Parallel()
	b := migrated(t)
	_, err := b.conn.Exec(t.Context(), "DROP TABLE tollgate.code_package")
	require.NoError(t, err)
	functions := b.functions(t)
	_, err = b.migrateCode(t, codeWith(t, map[string]string{"probe.sql": probeInt}))
	require.ErrorContains(t, err, "has no tollgate.code_package")
	require.Equal(t, functions, b.functions(t))
}

// withExtra returns the embedded migrations plus the given files.
func withExtra(t *testing.T, extra map[string]string) fs.FS {
	t.Helper()
	return copyFS(t, migrations.FS, extra)
}

func copyFS(t *testing.T, from fs.FS, extra map[string]string) fstest.MapFS {
	t.Helper()
	mfs := fstest.MapFS{}
	err := fs.WalkDir(from, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(from, path)
		mfs[path] = &fstest.MapFile{Data: data}
		return err
	})
	require.NoError(t, err)
	for name, body := range extra {
		mfs[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return mfs
}

// pruneInclude is the line of sql/install.sql that codeWith puts its files before, as a package
// author would: after it, only grants and the record of the install.
const pruneInclude = `{{ template "prune.sql" . }}`

// codeWith is the embedded code package (sql/) with the given files added and included in
// install.sql just before prune.sql, in name order.
func codeWith(t *testing.T, files map[string]string) fstest.MapFS {
	t.Helper()
	mfs := copyFS(t, sqlapi.FS, files)
	install := string(mfs["install.sql"].Data)
	require.Equal(t, 1, strings.Count(install, pruneInclude), "sql/install.sql includes prune.sql once")
	var includes []string
	for name := range files {
		includes = append(includes, fmt.Sprintf("{{ template %q . }}\n", name))
	}
	slices.Sort(includes)
	install = strings.Replace(install, pruneInclude, strings.Join(includes, "")+pruneInclude, 1)
	mfs["install.sql"] = &fstest.MapFile{Data: []byte(install)}
	return mfs
}

// A function some earlier package defined.
const (
	probeInt  = "CREATE OR REPLACE FUNCTION tollgate.zz_probe(n integer) RETURNS integer LANGUAGE sql AS 'SELECT n';\n"
	probeText = "CREATE OR REPLACE FUNCTION tollgate.zz_probe(n integer) RETURNS text LANGUAGE sql AS 'SELECT n::text';\n"
)

func TestChangedPackageIsInstalledAndRemovedFunctionsDropped(t *testing.T) {
	t.Parallel()
	b := migrated(t)
	original := b.installed(t)
	withProbe := codeWith(t, map[string]string{"probe.sql": probeInt})
	probeSHA, err := schema.RenderCode(withProbe)
	require.NoError(t, err)
	require.NotEqual(t, original, probeSHA.SHA256)

	res, err := b.migrateCode(t, withProbe)
	require.NoError(t, err)
	require.True(t, res.Code.Installed)
	require.Empty(t, res.Code.Dropped)
	require.Equal(t, probeSHA.SHA256, b.installed(t))
	require.True(t, exists(t, b.conn, "SELECT FROM pg_proc WHERE oid = 'tollgate.zz_probe(integer)'::regprocedure"))
	require.False(t, exists(t, b.conn, `SELECT FROM pg_proc p, aclexplode(p.proacl) a
		WHERE p.oid = 'tollgate.zz_probe(integer)'::regprocedure AND a.grantee = 0`), "grants.sql covers the new function")

	// The released package no longer has it: the install drops it, and only it.
	functions := b.functions(t)
	var out bytes.Buffer
	res, err = schema.MigrateFS(t.Context(), b.conn, migrations.FS, sqlapi.FS, schema.Latest, &out)
	require.NoError(t, err)
	require.True(t, res.Code.Installed)
	require.Equal(t, []string{"tollgate.zz_probe(n integer)"}, res.Code.Dropped)
	require.Contains(t, out.String(), "dropped tollgate.zz_probe(n integer): the code package no longer defines it\n")
	require.Equal(t, functions-1, b.functions(t))
	require.Equal(t, original, b.installed(t))

	res, err = schema.Migrate(t.Context(), b.conn, schema.Latest, nil)
	require.NoError(t, err)
	require.False(t, res.Code.Installed)
}

func TestRemovedFunctionThatAnAppObjectUsesFailsTheInstall(t *testing.T) {
	t.Parallel()
	b := migrated(t)
	withProbe := codeWith(t, map[string]string{"probe.sql": probeInt})
	_, err := b.migrateCode(t, withProbe)
	require.NoError(t, err)
	probeSHA := b.installed(t)
	_, err = b.conn.Exec(t.Context(), "CREATE VIEW public.app_view AS SELECT tollgate.zz_probe(1) AS x")
	require.NoError(t, err)
	functions := b.functions(t)

	var out bytes.Buffer
	res, err := schema.MigrateFS(t.Context(), b.conn, migrations.FS, sqlapi.FS, schema.Latest, &out)
	var me *schema.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, schema.CodePackage, me.Migration)
	require.Equal(t, "install", me.Direction)
	require.Equal(t, "2BP01", me.Code, "dependent_objects_still_exist")
	require.Contains(t, me.Detail, "app_view")
	require.False(t, res.Code.Installed)
	require.Contains(t, me.Report(), "code package sql/ failed to install\n")

	// Nothing changed: the install was one transaction.
	require.True(t, exists(t, b.conn, "SELECT FROM pg_class WHERE oid = 'public.app_view'::regclass"))
	require.True(t, exists(t, b.conn, "SELECT FROM pg_proc WHERE oid = 'tollgate.zz_probe(integer)'::regprocedure"))
	require.Equal(t, probeSHA, b.installed(t))
	require.Equal(t, functions, b.functions(t))
}

func TestReturnTypeChangeNeedsADropInThePackage(t *testing.T) {
	t.Parallel()
	b := migrated(t)
	_, err := b.migrateCode(t, codeWith(t, map[string]string{"probe.sql": probeInt}))
	require.NoError(t, err)
	before := b.installed(t)

	// CREATE OR REPLACE cannot change a return type...
	_, err = b.migrateCode(t, codeWith(t, map[string]string{"probe.sql": probeText}))
	var me *schema.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, "42P13", me.Code, "invalid_function_definition")
	require.Equal(t, before, b.installed(t))

	// ...so the file drops the old function first; the new one is the package's and stays.
	res, err := b.migrateCode(t, codeWith(t, map[string]string{
		"probe.sql": "DROP FUNCTION IF EXISTS tollgate.zz_probe(integer);\n" + probeText}))
	require.NoError(t, err)
	require.True(t, res.Code.Installed)
	require.Empty(t, res.Code.Dropped)
	var got string
	require.NoError(t, b.conn.QueryRow(t.Context(), "SELECT tollgate.zz_probe(7)").Scan(&got))
	require.Equal(t, "7", got)
}

func TestReinstallKeepsRowGatesOfAppTables(t *testing.T) {
	t.Parallel()
	b := migrated(t)
	ctx := t.Context()
	for _, q := range []string{
		`SELECT tollgate.define_plan('free', true)`,
		`SELECT tollgate.define_feature('projects', 'lifetime')`,
		`SELECT tollgate.set_limit('free', 'projects', 2)`,
		`CREATE TABLE public.projects (id serial PRIMARY KEY, owner text)`,
		`SELECT tollgate.attach_row_gate('public.projects', 'owner', 'projects')`,
		`INSERT INTO public.projects (owner) VALUES ('ada')`,
	} {
		_, err := b.conn.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	// App triggers bind to tollgate._row_gate() by OID: the package must keep defining it so.
	var gate uint32
	require.NoError(t, b.conn.QueryRow(ctx, `SELECT 'tollgate._row_gate()'::regprocedure::oid`).Scan(&gate))

	res, err := b.migrateCode(t, codeWith(t, map[string]string{"probe.sql": probeInt}))
	require.NoError(t, err)
	require.True(t, res.Code.Installed)
	var tgfoid uint32
	require.NoError(t, b.conn.QueryRow(ctx,
		`SELECT tgfoid FROM pg_trigger WHERE tgrelid = 'public.projects'::regclass AND NOT tgisinternal`).Scan(&tgfoid))
	require.Equal(t, gate, tgfoid, "the trigger still calls the same function")

	_, err = b.conn.Exec(ctx, `INSERT INTO public.projects (owner) VALUES ('ada')`)
	require.NoError(t, err, "the second project is within the limit")
	_, err = b.conn.Exec(ctx, `INSERT INTO public.projects (owner) VALUES ('ada')`)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe, "the gate still counts: the third is over the limit")
	require.Equal(t, "TG402", pe.Code)
}

func TestPackageThatRecordsNothingIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code := copyFS(t, sqlapi.FS, nil)
	install := string(code["install.sql"].Data)
	record := `{{ template "record_install.sql" . }}`
	require.Contains(t, install, record)
	code["install.sql"] = &fstest.MapFile{Data: []byte(strings.Replace(install, record, "", 1))}

	_, err := b.migrateCode(t, code)
	require.ErrorContains(t, err, "record_install.sql")
	require.Equal(t, b.latest, b.version(t), "the migrations are committed")
	require.Zero(t, b.functions(t), "the package is not")
	require.Empty(t, b.installed(t))
}

func TestConcurrentMigratesInstallOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 4
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = b.db.Conn(t, b.db.URL)
	}
	results := make([]schema.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = schema.Migrate(context.Background(), conns[i], schema.Latest, nil)
		}()
	}
	close(start)
	wg.Wait()
	installs, applied := 0, 0
	for i := range results {
		require.NoError(t, errs[i])
		require.Equal(t, b.latest, results[i].To)
		applied += len(results[i].Applied)
		if results[i].Code.Installed {
			installs++
		}
	}
	require.Equal(t, int(b.latest), applied, "each migration ran once")
	require.Equal(t, 1, installs, "the package was installed once")
}

func TestFailingMigrationLeavesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bad := fmt.Sprintf("%03d_bad.sql", b.latest+1)
	fsys := withExtra(t, map[string]string{bad: "CREATE TABLE tollgate.half_applied (x int);\n" +
		"-- the next line has a typo\n" +
		"SELEC 1;\n" +
		"CREATE TABLE tollgate.never (x int);\n"})

	var out bytes.Buffer
	res, err := schema.MigrateFS(t.Context(), b.conn, fsys, sqlapi.FS, schema.Latest, &out)
	var me *schema.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, bad, me.Migration)
	require.Equal(t, "up", me.Direction)
	require.Equal(t, "42601", me.Code)
	require.Equal(t, bad, me.File)
	require.Equal(t, 3, me.Line)
	require.Equal(t, "SELEC 1;", me.LineText)
	require.Contains(t, me.Report(), "migration "+bad+" failed\n")
	require.Contains(t, me.Report(), "\n  line 3: SELEC 1;\n")
	require.Len(t, res.Applied, int(b.latest), "the good migrations before it are applied")
	require.Equal(t, b.latest, res.To)
	require.False(t, res.Code.Installed, "the package waits for the latest version")

	require.Equal(t, b.latest, b.version(t), "still at the previous version")
	require.False(t, exists(t, b.conn, "SELECT FROM pg_class WHERE relname = 'half_applied'"), "nothing of the failed migration remains")
}

func TestFailingLineIsCountedInTheFile(t *testing.T) {
	t.Parallel()
	b := migrated(t)

	cases := []struct {
		name, body string
		target     int32
		code       string
		line       int
		text       string
	}{
		{
			// tern trims the blank lines before the SQL; the line is still the file's.
			name: "leading blank lines", target: b.latest + 1, code: "42P01", line: 4, text: "SELECT * FROM no_such_table;",
			body: "\n\n-- comment\nSELECT * FROM no_such_table;\n",
		},
		{
			// An error raised inside a DO block carries the statement in InternalQuery.
			name: "inside a DO block", target: b.latest + 1, code: "42P01", line: 4, text: "    INSERT INTO no_such_table VALUES (1);",
			body: "DO $$\nBEGIN\n  IF true THEN\n    INSERT INTO no_such_table VALUES (1);\n  END IF;\nEND\n$$;\n",
		},
		{
			name: "down part", target: b.latest, code: "42601", line: 5, text: "SELEC 2;",
			body: "SELECT 1;\n---- create above / drop below ----\n\n-- going down\nSELEC 2;\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := withExtra(t, map[string]string{fmt.Sprintf("%03d_extra.sql", b.latest+1): tc.body})
			if tc.target == b.latest {
				_, err := schema.MigrateFS(t.Context(), b.conn, fsys, sqlapi.FS, b.latest+1, nil)
				require.NoError(t, err)
				t.Cleanup(func() { b.conn.Exec(context.Background(), "UPDATE public.schema_version SET version = $1", b.latest) })
			}
			_, err := schema.MigrateFS(t.Context(), b.conn, fsys, sqlapi.FS, tc.target, nil)
			var me *schema.MigrationError
			require.ErrorAs(t, err, &me)
			require.Equal(t, tc.code, me.Code)
			require.Equal(t, tc.line, me.Line)
			require.Equal(t, tc.text, me.LineText)
		})
	}
}

func TestFailingLineInTheCodePackageNamesTheFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code := codeWith(t, map[string]string{
		"a_ok.sql":  "CREATE TABLE tollgate.a_ok (x int);\n",
		"b_bad.sql": "-- b\nSELECT 1;\nSELEC 2;\n",
	})
	res, err := b.migrateCode(t, code)
	var me *schema.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, schema.CodePackage, me.Migration)
	require.Equal(t, "install", me.Direction)
	require.Equal(t, "42601", me.Code)
	require.Equal(t, "sql/b_bad.sql", me.File)
	require.Equal(t, 3, me.Line)
	require.Equal(t, "SELEC 2;", me.LineText)
	require.Contains(t, me.Report(), "code package sql/ failed to install\n")
	require.Contains(t, me.Report(), "\n  sql/b_bad.sql line 3: SELEC 2;\n")
	require.Len(t, res.Applied, int(b.latest), "the migrations before it are committed")
	require.Equal(t, b.latest, b.version(t))
	require.False(t, exists(t, b.conn, "SELECT FROM pg_class WHERE relname = 'a_ok'"), "nothing of the package remains")
	require.Zero(t, b.functions(t))
}

func TestCurrentVersionDoesNotCreateTheVersionTable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Zero(t, b.version(t))
	require.Empty(t, b.installed(t))
	require.False(t, exists(t, b.conn, "SELECT FROM pg_class WHERE relname = 'schema_version'"))
}

func TestNoFunctionIsExecutableByPublic(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	conn := db.Conn(t, db.URL)

	// A NULL proacl is the default ACL, which lets PUBLIC execute.
	rows, err := conn.Query(t.Context(), `
		SELECT p.oid::regprocedure::text
		FROM pg_proc p
		WHERE p.pronamespace = 'tollgate'::regnamespace
		  AND (p.proacl IS NULL
		       OR EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
		ORDER BY 1`)
	require.NoError(t, err)
	public, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, public, "functions PUBLIC can execute")

	var n int
	require.NoError(t, conn.QueryRow(t.Context(),
		"SELECT count(*) FROM pg_proc WHERE pronamespace = 'tollgate'::regnamespace").Scan(&n))
	require.Positive(t, n, "the schema has functions")
}
