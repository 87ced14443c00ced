package citus_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/citus"
	"github.com/tollgate/tollgate/internal/schema"
	sqlapi "github.com/tollgate/tollgate/sql"
	"github.com/tollgate/tollgate/tests/citustest"
)

// An install that ran on the coordinator as a single node (tollgate migrate without --citus) keeps its data
// when tollgate migrate --citus distributes it: the rows move to the workers and counting goes on from them.
func TestExistingInstallMovesToTheCluster(t *testing.T) {
	t.Parallel()
	db := citustest.NewEmptyDB(t)
	ctx := context.Background()
	conn := db.Conn(t, db.URL)
	_, err := schema.Migrate(ctx, conn, schema.Latest, nil)
	require.NoError(t, err)
	distributed, err := citus.IsDistributed(ctx, conn)
	require.NoError(t, err)
	require.False(t, distributed)
	for _, sql := range []string{
		`SELECT tollgate.define_plan('free', true)`,
		`SELECT tollgate.define_feature('api', '30d', 'hard', '{50,100}', NULL, 'upgrade_prompt')`,
		`SELECT tollgate.set_limit('free', 'api', 4)`,
		`SELECT tollgate.set_customer('old', 'old@example.com', 'cus_Old')`,
		`SELECT count(tollgate.consume('old', 'api')) FROM generate_series(1, 3)`,
		`SELECT tollgate.outbox_collect()`,
	} {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}

	_, err = citus.Migrate(ctx, conn, nil, nil, nil)
	require.NoError(t, err)
	distributed, err = citus.IsDistributed(ctx, conn)
	require.NoError(t, err)
	require.True(t, distributed)

	b := &bundle{db: db, owner: db.Pool(t), app: newPool(t, db.AppURL, 4)}
	require.EqualValues(t, 3, b.int(t, `SELECT used FROM tollgate.usage WHERE customer = 'old'`))
	require.EqualValues(t, 1, b.int(t, `SELECT count(*) FROM tollgate.events WHERE customer = 'old' AND threshold = 50`))
	ok, used := b.consume(t, "old", "api", 1)
	require.True(t, ok)
	require.EqualValues(t, 4, used)
	ok, _ = b.consume(t, "old", "api", 1)
	require.False(t, ok)
	require.EqualValues(t, 1, b.int(t, `SELECT count(*) FROM tollgate.events WHERE customer = 'old' AND kind = 'limit_reached'`))
	// the rows live on the workers now; the coordinator's local copy was freed
	for _, table := range []string{"customers", "usage", "events", "plans"} {
		require.Zero(t, b.int(t, `SELECT pg_relation_size(('tollgate.' || $1)::regclass)`, table),
			"the coordinator keeps no local copy of tollgate.%s", table)
	}
}

// A later tollgate migrate that installs a changed code package (the next release) keeps the cluster form:
// the package's plain version of the configuration trigger and of the sidecar's functions is replaced in the
// same transaction, so every copy of the configuration still bumps its version and the outbox still works.
func TestPackageReinstallKeepsTheClusterForm(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	ctx := context.Background()
	next := fstest.MapFS{}
	require.NoError(t, fs.WalkDir(sqlapi.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sqlapi.FS, path)
		if path == "install.sql" {
			data = append(data, "\n-- the next release\n"...)
		}
		next[path] = &fstest.MapFile{Data: data}
		return err
	}))
	conn := b.db.Conn(t, b.db.URL)
	res, err := citus.Migrate(ctx, conn, nil, next, nil)
	require.NoError(t, err)
	require.True(t, res.Code.Installed)
	recorded, err := schema.InstalledCodeSHA256(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, res.Code.SHA256, recorded)

	before := b.int(t, `SELECT version FROM tollgate.config_state`)
	b.exec(t, `SELECT tollgate.set_limit('free', 'api', 3)`)
	rows, err := b.owner.Query(ctx, `SELECT result::bigint FROM run_command_on_all_nodes('SELECT version FROM tollgate.config_state')`)
	require.NoError(t, err)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Len(t, versions, 3)
	require.Greater(t, versions[0], before)
	require.Equal(t, versions[0], versions[1], "every copy bumped alike")
	require.Equal(t, versions[0], versions[2], "every copy bumped alike")
	for range 3 {
		ok, _ := b.consume(t, "next", "api", 1)
		require.True(t, ok)
	}
	ok, _ := b.consume(t, "next", "api", 1)
	require.False(t, ok)
	var n int
	require.NoError(t, b.owner.QueryRow(ctx, `SELECT tollgate.outbox_collect()`).Scan(&n))
	require.Positive(t, n)

	// and the unchanged package again: nothing to install, nothing to place
	res, err = citus.Migrate(ctx, conn, nil, next, nil)
	require.NoError(t, err)
	require.False(t, res.Code.Installed)
}

// migrate --citus needs the coordinator to know itself and its workers; plain tollgate migrate on a database
// without the extension is refused by the Citus step with a clear error.
func TestApplyNeedsACluster(t *testing.T) {
	t.Parallel()
	db := citustest.NewEmptyDB(t)
	ctx := context.Background()
	conn := db.Conn(t, db.URL)
	_, err := conn.Exec(ctx, `SELECT citus_remove_node(nodename, nodeport) FROM pg_dist_node WHERE groupid <> 0`)
	require.NoError(t, err)
	_, err = citus.Migrate(ctx, conn, nil, nil, nil)
	require.ErrorContains(t, err, "no active worker")
	_, err = conn.Exec(ctx, `DROP EXTENSION citus CASCADE`)
	require.NoError(t, err)
	_, err = citus.Migrate(ctx, conn, nil, nil, nil)
	require.ErrorIs(t, err, citus.ErrNoCitus)
}
