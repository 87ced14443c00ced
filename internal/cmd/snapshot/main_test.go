package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/migrations"
	sqlapi "github.com/tollgate/tollgate/sql"
)

// TestSnapshotCurrent keeps the newest snapshot equal to sql/ while its migration is unreleased.
func TestSnapshotCurrent(t *testing.T) {
	t.Parallel()
	name, migration, err := LatestSnapshot(migrations.FS)
	require.NoError(t, err)
	snapshot, err := fs.Sub(migrations.FS, "snapshots/"+name)
	require.NoError(t, err)
	changes, err := Diff(sqlapi.FS, snapshot)
	require.NoError(t, err)
	require.Empty(t, changes, "migrations/snapshots/%s (installed by %s) differs from sql/: run `make snapshot` "+
		"(or, if %s is released, add a migration installing a new snapshot)", name, migration, migration)
}

func TestLatestSnapshot(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"001_a.sql":           {Data: []byte("SELECT 1;")},
		"002_code.sql":        {Data: []byte(`{{ install_snapshot "002" }}`)},
		"003_b.sql":           {Data: []byte("SELECT 3;")},
		"004_code.sql":        {Data: []byte("-- new code\n{{- install_snapshot \"004\" -}}\n---- create above / drop below ----\n")},
		"005_c.sql":           {Data: []byte("SELECT 5;")},
		"snapshots/004/x.sql": {Data: []byte("x")},
	}
	name, migration, err := LatestSnapshot(fsys)
	require.NoError(t, err)
	require.Equal(t, "004", name)
	require.Equal(t, "004_code.sql", migration)

	_, _, err = LatestSnapshot(fstest.MapFS{"001_a.sql": {Data: []byte("SELECT 1;")}})
	require.Error(t, err)
}

func TestRunSyncsTheSnapshot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
	write("migrations/001_code.sql", `{{ install_snapshot "001" }}`)
	write("migrations/002_code.sql", `{{ install_snapshot "002" }}`)
	write("migrations/snapshots/001/install.sql", "released, left alone")
	write("migrations/snapshots/002/install.sql", "old")
	write("migrations/snapshots/002/gone.sql", "removed from sql/")
	write("sql/install.sql", "new")
	write("sql/added.sql", "added")
	write("sql/embed.go", "package sqlapi")

	require.NoError(t, run(root))
	changes, err := Diff(os.DirFS(filepath.Join(root, "sql")), os.DirFS(filepath.Join(root, "migrations/snapshots/002")))
	require.NoError(t, err)
	require.Empty(t, changes)
	require.NoFileExists(t, filepath.Join(root, "migrations/snapshots/002/embed.go"))
	data, err := os.ReadFile(filepath.Join(root, "migrations/snapshots/001/install.sql"))
	require.NoError(t, err)
	require.Equal(t, "released, left alone", string(data))
}
