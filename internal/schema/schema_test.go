package schema_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/migrations"
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

func (b *testBundle) version(t *testing.T) int32 {
	t.Helper()
	v, err := schema.CurrentVersion(t.Context(), b.conn)
	require.NoError(t, err)
	return v
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
	require.Contains(t, out.String(), fmt.Sprintf("migrated from version 0 to %d\n", b.latest))
	require.Equal(t, b.latest, b.version(t))

	out.Reset()
	res, err = schema.Migrate(t.Context(), b.conn, schema.Latest, &out)
	require.NoError(t, err)
	require.Empty(t, res.Applied)
	require.Equal(t, fmt.Sprintf("already at version %d, nothing to do\n", b.latest), out.String())
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
	b := setup(t)
	ctx := t.Context()
	_, err := schema.Migrate(ctx, b.conn, schema.Latest, nil)
	require.NoError(t, err)

	var out bytes.Buffer
	res, err := schema.Migrate(ctx, b.conn, 0, &out)
	require.NoError(t, err)
	require.Equal(t, int32(0), res.To)
	require.Len(t, res.Applied, int(b.latest))
	for _, step := range res.Applied {
		require.Equal(t, "down", step.Direction)
	}
	require.Zero(t, b.version(t))
	require.False(t, exists(t, b.conn, "SELECT FROM pg_namespace WHERE nspname = 'tollgate'"), "schema tollgate is gone")
	require.False(t, exists(t, b.conn, "SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'tollgate'"))
	require.False(t, exists(t, b.conn, "SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'tollgate'"))
	for _, role := range []string{"tollgate_app", "tollgate_sidecar"} {
		require.True(t, exists(t, b.conn, "SELECT FROM pg_roles WHERE rolname = $1", role), "role %s stays: roles are cluster-wide", role)
	}

	res, err = schema.Migrate(ctx, b.conn, schema.Latest, nil)
	require.NoError(t, err)
	require.Equal(t, b.latest, res.To)
	require.True(t, exists(t, b.conn, "SELECT FROM pg_proc WHERE oid = 'tollgate.consume'::regproc"))
}

func TestMigrateToEachVersionAndBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for v := int32(1); v <= b.latest; v++ {
		_, err := schema.Migrate(t.Context(), b.conn, v, nil)
		require.NoError(t, err, "up to %d", v)
		require.Equal(t, v, b.version(t))
	}
	for v := b.latest - 1; v >= 0; v-- {
		_, err := schema.Migrate(t.Context(), b.conn, v, nil)
		require.NoError(t, err, "down to %d", v)
		require.Equal(t, v, b.version(t))
	}
}

func TestTargetOutOfRange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := schema.Migrate(t.Context(), b.conn, b.latest+1, nil)
	require.Error(t, err)
	require.Zero(t, b.version(t))
}

// withExtra returns the embedded migrations plus the given files.
func withExtra(t *testing.T, extra map[string]string) fs.FS {
	t.Helper()
	mfs := fstest.MapFS{}
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(migrations.FS, path)
		mfs[path] = &fstest.MapFile{Data: data}
		return err
	})
	require.NoError(t, err)
	for name, body := range extra {
		mfs[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return mfs
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
	res, err := schema.MigrateFS(t.Context(), b.conn, fsys, schema.Latest, &out)
	var me *schema.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, bad, me.Migration)
	require.Equal(t, "up", me.Direction)
	require.Equal(t, "42601", me.Code)
	require.Equal(t, bad, me.File)
	require.Equal(t, 3, me.Line)
	require.Equal(t, "SELEC 1;", me.LineText)
	require.Contains(t, me.Report(), "\n  line 3: SELEC 1;\n")
	require.Len(t, res.Applied, int(b.latest), "the good migrations before it are applied")
	require.Equal(t, b.latest, res.To)

	require.Equal(t, b.latest, b.version(t), "still at the previous version")
	require.False(t, exists(t, b.conn, "SELECT FROM pg_class WHERE relname = 'half_applied'"), "nothing of the failed migration remains")
}

func TestFailingLineIsCountedInTheFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := schema.Migrate(t.Context(), b.conn, schema.Latest, nil)
	require.NoError(t, err)

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
				_, err := schema.MigrateFS(t.Context(), b.conn, fsys, b.latest+1, nil)
				require.NoError(t, err)
				t.Cleanup(func() { b.conn.Exec(context.Background(), "UPDATE public.schema_version SET version = $1", b.latest) })
			}
			_, err := schema.MigrateFS(t.Context(), b.conn, fsys, tc.target, nil)
			var me *schema.MigrationError
			require.ErrorAs(t, err, &me)
			require.Equal(t, tc.code, me.Code)
			require.Equal(t, tc.line, me.Line)
			require.Equal(t, tc.text, me.LineText)
		})
	}
}

func TestFailingLineInASnapshotNamesTheFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code := fmt.Sprintf("%03d_code.sql", b.latest+1)
	fsys := withExtra(t, map[string]string{
		code:                         "-- installs the test snapshot\n{{ install_snapshot \"test\" }}\n",
		"snapshots/test/install.sql": "{{ template \"a.sql\" . }}\n{{ template \"b.sql\" . }}\n",
		"snapshots/test/a.sql":       "CREATE TABLE tollgate.a_ok (x int);\n",
		"snapshots/test/b.sql":       "-- b\nSELECT 1;\nSELEC 2;\n",
	})
	_, err := schema.MigrateFS(t.Context(), b.conn, fsys, schema.Latest, nil)
	var me *schema.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, code, me.Migration)
	require.Equal(t, "42601", me.Code)
	require.Equal(t, "snapshots/test/b.sql", me.File)
	require.Equal(t, 3, me.Line)
	require.Equal(t, "SELEC 2;", me.LineText)
	require.Contains(t, me.Report(), "\n  snapshots/test/b.sql line 3: SELEC 2;\n")
	require.Equal(t, b.latest, b.version(t))
}

func TestCurrentVersionDoesNotCreateTheVersionTable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Zero(t, b.version(t))
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
