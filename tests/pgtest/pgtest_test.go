package pgtest_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pgtest.Server(t).Admin().QueryRow(t.Context(),
		"SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&ok))
	return ok
}

func TestNewDBIsMigrated(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)

	latest, err := schema.LatestVersion()
	require.NoError(t, err)
	v, err := schema.CurrentVersion(t.Context(), db.Pool(t))
	require.NoError(t, err)
	require.Equal(t, latest, v)

	var current string
	require.NoError(t, db.Pool(t).QueryRow(t.Context(), "SELECT current_database()").Scan(&current))
	require.Equal(t, db.Name, current)
}

func TestNewDBIsDroppedAfterTheTest(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("user", func(t *testing.T) {
		db := pgtest.NewDB(t)
		db.Pool(t) // an open pool must not prevent the drop
		db.Conn(t, db.AppURL)
		name = db.Name
		require.True(t, databaseExists(t, name))
	})
	require.False(t, databaseExists(t, name))
}

func TestParallelDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	names := sync.Map{}
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			db := pgtest.NewDB(t)
			_, dup := names.LoadOrStore(db.Name, true)
			require.False(t, dup, "database names are unique")
			db.Exec(t, "CREATE TABLE public.mine (i int)")
			db.Exec(t, "INSERT INTO public.mine VALUES ($1)", i)
			var n int
			require.NoError(t, db.Pool(t).QueryRow(t.Context(), "SELECT count(*) FROM public.mine").Scan(&n))
			require.Equal(t, 1, n)
		})
	}
}

func TestLoginRoles(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)

	for _, tc := range []struct {
		url, user, member string
	}{
		{db.AppURL, pgtest.AppRole, "tollgate_app"},
		{db.SidecarURL, pgtest.SidecarRole, "tollgate_sidecar"},
	} {
		conn := db.Conn(t, tc.url)
		var user string
		var super bool
		require.NoError(t, conn.QueryRow(t.Context(),
			"SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&user, &super))
		require.Equal(t, tc.user, user)
		require.False(t, super)

		rows, err := conn.Query(t.Context(), `
			SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
			WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)`)
		require.NoError(t, err)
		memberOf, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{tc.member}, memberOf)
	}
}

func TestNewEmptyDBHasNoSchema(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmptyDB(t)
	conn := db.Conn(t, db.URL)
	var n int
	require.NoError(t, conn.QueryRow(t.Context(),
		"SELECT count(*) FROM pg_namespace WHERE nspname IN ('tollgate') OR (nspname = 'public' AND EXISTS (SELECT FROM pg_class WHERE relnamespace = pg_namespace.oid))").Scan(&n))
	require.Zero(t, n)
	v, err := schema.CurrentVersion(t.Context(), conn)
	require.NoError(t, err)
	require.Zero(t, v)
}

func TestServerBinaries(t *testing.T) {
	t.Parallel()
	require.FileExists(t, pgtest.Server(t).Bin("pg_dump"))
}
