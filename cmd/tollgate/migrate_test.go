package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/migrations"
	sqlapi "github.com/tollgate/tollgate/sql"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) {
	// Tests that need the CLI as a process of its own (to interrupt it) run this binary with
	// TOLLGATE_TEST_RUN_CLI=1: it is then the tollgate command, not the tests.
	if os.Getenv("TOLLGATE_TEST_RUN_CLI") == "1" {
		main()
		return
	}
	pgtest.Main(m)
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs `tollgate ARGS...` in-process with an environment of its own.
func runCLI(t *testing.T, env map[string]string, fsys fs.FS, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	var code int
	if len(args) > 0 && args[0] == "migrate" {
		if fsys == nil {
			fsys = migrations.FS
		}
		code = migrateCmd(t.Context(), args[1:], &stdout, &stderr, getenv, fsys, sqlapi.FS)
	} else {
		code = run(t.Context(), args, &stdout, &stderr)
	}
	return result{code, stdout.String(), stderr.String()}
}

func latest(t *testing.T) int32 {
	t.Helper()
	v, err := schema.LatestVersion()
	require.NoError(t, err)
	return v
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmptyDB(t)

	r := runCLI(t, nil, nil, "migrate", "--database-url", db.URL)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "migrating 001_roles.sql up\n")
	require.Contains(t, r.stdout, fmt.Sprintf("migrated from version 0 to %d\n", latest(t)))
	require.Contains(t, r.stdout, "installing code package sql/ (sha256 ")

	// DATABASE_URL is the fallback.
	r = runCLI(t, map[string]string{"DATABASE_URL": db.URL}, nil, "migrate")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, fmt.Sprintf("already at version %d with code package sql/ (sha256 ", latest(t)))
	require.Contains(t, r.stdout, "nothing to do\n")
	require.NotContains(t, r.stdout, "migrating")
	require.NotContains(t, r.stdout, "installing")
}

func TestMigrateDownToZeroAndUp(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)

	r := runCLI(t, nil, nil, "migrate", "--database-url", db.URL, "--to", "0")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "removed the code package: ")
	require.Contains(t, r.stdout, fmt.Sprintf("migrating %03d_", latest(t)))
	require.Contains(t, r.stdout, fmt.Sprintf("migrated from version %d to 0\n", latest(t)))

	r = runCLI(t, nil, nil, "migrate", "--database-url", db.URL)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, fmt.Sprintf("migrated from version 0 to %d\n", latest(t)))
}

func TestMigrateFailureOutput(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)

	mfs := fstest.MapFS{}
	require.NoError(t, fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(migrations.FS, path)
		mfs[path] = &fstest.MapFile{Data: data}
		return err
	}))
	bad := fmt.Sprintf("%03d_bad.sql", latest(t)+1)
	mfs[bad] = &fstest.MapFile{Data: []byte("-- a migration with a typo\nCREATE TABLE tollgate.t (x int);\nSELEC 1;\n")}

	r := runCLI(t, nil, mfs, "migrate", "--database-url", db.URL)
	require.Equal(t, 1, r.code)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	require.Equal(t, "tollgate: migration "+bad+" failed", lines[0])
	require.Regexp(t, `^  SQLSTATE 42601: `, lines[1])
	require.Equal(t, "  line 3: SELEC 1;", lines[len(lines)-1])
	require.Contains(t, r.stdout, "migrating "+bad+" up\n")
}

func TestMigrateArguments(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, nil, "migrate")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "pass --database-url URL or set DATABASE_URL")

	r = runCLI(t, nil, nil, "migrate", "--database-url", "postgres://x@127.0.0.1/db", "--to", "latest")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--to wants a version number")

	r = runCLI(t, nil, nil, "migrate", "--help")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "usage: tollgate migrate")
}

func TestMigrateNeverPrintsPasswords(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-pa55"
	for _, url := range []string{
		"postgres://someone:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=5", // nothing listens on port 1
		"postgres://someone:" + secret + "@127.0.0.1:notaport/db",
		"host=127.0.0.1 port=1 user=someone password=" + secret + " dbname=db sslmode=disable",
		"host=127.0.0.1 port=1 password='" + secret + "' user=someone sslmode=disable",
		"postgres://someone@127.0.0.1:1/db?password=" + secret + "&sslmode=disable",
	} {
		r := runCLI(t, nil, nil, "migrate", "--database-url", url)
		require.NotEqual(t, 0, r.code)
		require.NotContains(t, r.stdout+r.stderr, secret, url)
		require.Contains(t, r.stderr, "tollgate migrate: ")
	}

	// On success too: the trusting test server ignores the password.
	db := pgtest.NewEmptyDB(t)
	url := strings.Replace(db.URL, "postgres@", "postgres:"+secret+"@", 1)
	require.Contains(t, url, secret)
	r := runCLI(t, nil, nil, "migrate", "--database-url", url)
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stdout+r.stderr, secret)
}

func TestHelp(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, nil, "help")
	require.Equal(t, 0, r.code)
	for name := range commands {
		require.Contains(t, r.stdout, "  "+name+" ")
	}
	r = runCLI(t, nil, nil, "help", "migrate")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "usage: tollgate migrate")

	r = runCLI(t, nil, nil, "no-such-command")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `unknown command "no-such-command"`)

	r = runCLI(t, nil, nil)
	require.Equal(t, 2, r.code)

	r = runCLI(t, nil, nil, "version")
	require.Equal(t, 0, r.code)
	require.Regexp(t, `^tollgate \S+.* \(schema version \d+, go`, r.stdout)
}

// buildTern builds the tern CLI of go.mod's version (a go.mod tool).
func buildTern(t *testing.T) string {
	t.Helper()
	tern := filepath.Join(t.TempDir(), "tern")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "build", "-o", tern, "github.com/jackc/tern/v2").CombinedOutput()
	require.NoError(t, err, "go build tern:\n%s", out)
	return tern
}

// schemaDump is pg_dump --schema-only of the whole database, normalized as schema/tollgate.sql is.
func schemaDump(t *testing.T, db *pgtest.DB) string {
	t.Helper()
	out, err := schema.PgDump(t.Context(), pgtest.Server(t).Bin("pg_dump"), db.URL, "--schema-only")
	require.NoError(t, err)
	return schema.NormalizeDump(out)
}

// runTern runs the tern CLI outside any tern.conf and returns its combined output.
func runTern(t *testing.T, tern string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tern, args...)
	cmd.Dir = t.TempDir() // no tern.conf there
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// repoDir is the absolute path of a directory of the repository.
func repoDir(t *testing.T, rel string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", rel))
	require.NoError(t, err)
	return dir
}

// The plain-tern path of README and CONTRIBUTING: tern migrate, then tern code install sql.
func TestTernCLIMigratesTheSameSchema(t *testing.T) {
	t.Parallel()
	tern := buildTern(t)
	byTern, byTollgate := pgtest.NewEmptyDB(t), pgtest.NewEmptyDB(t)

	repoMigrations, repoSQL := repoDir(t, "migrations"), repoDir(t, "sql")
	out, err := runTern(t, tern, "migrate", "--migrations", repoMigrations, "--conn-string", byTern.URL)
	require.NoError(t, err, "%s", out)
	out, err = runTern(t, tern, "code", "install", repoSQL, "--conn-string", byTern.URL)
	require.NoError(t, err, "%s", out)

	r := runCLI(t, nil, nil, "migrate", "--database-url", byTollgate.URL)
	require.Equal(t, 0, r.code, r.stderr)

	for _, db := range []*pgtest.DB{byTern, byTollgate} {
		v, err := schema.CurrentVersion(t.Context(), db.Pool(t))
		require.NoError(t, err)
		require.Equal(t, latest(t), v)
	}
	dumpTern, dumpTollgate := schemaDump(t, byTern), schemaDump(t, byTollgate)
	require.Contains(t, dumpTollgate, "CREATE FUNCTION tollgate.consume(")
	if dumpTern != dumpTollgate {
		require.Empty(t, changedOnDisk(t, repoMigrations, migrations.FS), "migrations/ changed on disk since the test was built: run it again")
		require.Empty(t, changedOnDisk(t, repoSQL, sqlapi.FS), "sql/ changed on disk since the test was built: run it again")
	}
	require.Equal(t, dumpTern, dumpTollgate)

	// tern sent the package as one string too, so it recorded the hash tollgate computes, and
	// tollgate migrate finds nothing to do on the database tern made.
	want, err := schema.CodeSHA256()
	require.NoError(t, err)
	for _, db := range []*pgtest.DB{byTern, byTollgate} {
		sha, err := schema.InstalledCodeSHA256(t.Context(), db.Pool(t))
		require.NoError(t, err)
		require.Equal(t, want, sha)
	}
	r = runCLI(t, nil, nil, "migrate", "--database-url", byTern.URL)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "nothing to do\n")
}

// tern code install runs the package as tollgate migrate does: in one transaction, dropping the
// functions it no longer defines, and failing whole when an app object depends on one.
func TestTernCodeInstallDropsRemovedFunctions(t *testing.T) {
	t.Parallel()
	tern := buildTern(t)
	db := pgtest.NewDB(t)
	conn := db.Conn(t, db.URL)
	repoSQL := repoDir(t, "sql")
	exec := func(q string) {
		t.Helper()
		_, err := conn.Exec(t.Context(), q)
		require.NoError(t, err, q)
	}
	has := func(q string) bool {
		t.Helper()
		var ok bool
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT EXISTS ("+q+")").Scan(&ok))
		return ok
	}
	const removed = "SELECT FROM pg_proc WHERE proname = 'zz_removed' AND pronamespace = 'tollgate'::regnamespace"

	// A function an earlier package defined: the install drops it.
	exec("CREATE FUNCTION tollgate.zz_removed() RETURNS integer LANGUAGE sql AS 'SELECT 1'")
	out, err := runTern(t, tern, "code", "install", repoSQL, "--conn-string", db.URL)
	require.NoError(t, err, "%s", out)
	require.False(t, has(removed))

	// Again, with an app view on it: the install fails, and the functions it had already replaced
	// are as they were (one transaction).
	exec("CREATE FUNCTION tollgate.zz_removed() RETURNS integer LANGUAGE sql AS 'SELECT 1'")
	exec("CREATE VIEW public.app_view AS SELECT tollgate.zz_removed() AS x")
	var xmin string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT xmin::text FROM pg_proc WHERE oid = 'tollgate.consume(text,text,bigint)'::regprocedure").Scan(&xmin))
	out, err = runTern(t, tern, "code", "install", repoSQL, "--conn-string", db.URL)
	require.Error(t, err, "%s", out)
	require.Contains(t, out, "2BP01", "the SQLSTATE tern prints")
	require.True(t, has(removed))
	require.True(t, has("SELECT FROM pg_class WHERE oid = 'public.app_view'::regclass"))
	require.True(t, has("SELECT FROM pg_proc WHERE oid = 'tollgate.consume(text,text,bigint)'::regprocedure AND xmin::text = '"+xmin+"'"),
		"consume was replaced early in the package; the failure rolled that back")
}

// changedOnDisk lists the files of dir that differ from their embedded copies.
func changedOnDisk(t *testing.T, dir string, embedded fs.FS) []string {
	t.Helper()
	var changed []string
	disk := os.DirFS(dir)
	require.NoError(t, fs.WalkDir(disk, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".sql" {
			return err
		}
		onDisk, err := fs.ReadFile(disk, path)
		if err != nil {
			return err
		}
		if inBinary, err := fs.ReadFile(embedded, path); err != nil || !bytes.Equal(onDisk, inBinary) {
			changed = append(changed, path)
		}
		return nil
	}))
	return changed
}

// --citus on a database without Citus changes nothing and says what is missing; with --to it is refused
// (the cluster form is the latest version's). The tests on a cluster are in tests/citus.
func TestMigrateCitusNeedsACluster(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmptyDB(t)
	r := runCLI(t, nil, nil, "migrate", "--citus", "--database-url", db.URL)
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "CREATE EXTENSION citus")
	v, err := schema.CurrentVersion(t.Context(), db.Pool(t))
	require.NoError(t, err)
	require.Zero(t, v, "nothing was migrated")

	r = runCLI(t, nil, nil, "migrate", "--citus", "--to", "2", "--database-url", db.URL)
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "leave out --to")

	// a plain migrate of a database that is not distributed is the single-node one
	r = runCLI(t, nil, nil, "migrate", "--database-url", db.URL)
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stdout, "citus:")
}
