package pgserver

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// processesIn lists the pids whose working directory is dir: every postgres process of a cluster
// (postmaster, backends, background workers) runs in its data directory.
func processesIn(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+" ")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestStartStopLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	srv, err := Start(ctx, Options{Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Stop() })

	for _, url := range []string{srv.URL("postgres"), srv.SocketURL("postgres")} {
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err, url)
		var fsync string
		require.NoError(t, conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync))
		require.Equal(t, "off", fsync)
		require.NoError(t, conn.Close(ctx))
	}
	// An open session must not block Stop (fast shutdown terminates it).
	conn, err := pgx.Connect(ctx, srv.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(context.Background())

	root := filepath.Dir(srv.DataDir())
	pids := processesIn(t, srv.DataDir())
	require.Contains(t, pids, srv.PID())
	require.Greater(t, len(pids), 1, "postmaster and its auxiliary processes")

	require.NoError(t, srv.Stop())
	require.NoError(t, srv.Stop(), "Stop is idempotent")

	for _, pid := range pids {
		require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "process %d still exists", pid)
	}
	_, err = os.Stat(root)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestSettingsOverrideDefaults(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	srv, err := Start(ctx, Options{Settings: map[string]string{"fsync": "on", "work_mem": "8MB"}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Stop()) })

	conn, err := pgx.Connect(ctx, srv.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var fsync, workMem, maxConns string
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT current_setting('fsync'), current_setting('work_mem'), current_setting('max_connections')").
		Scan(&fsync, &workMem, &maxConns))
	require.Equal(t, []string{"on", "8MB", "300"}, []string{fsync, workMem, maxConns})
}

func TestPersistentDirSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Not t.TempDir: its parent is private to the test's user, and as root the server runs as postgres.
	parent, err := os.MkdirTemp("", "tollgate-pgserver-test-*")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(parent) })
	require.NoError(t, os.Chmod(parent, 0o755))
	// Deep enough that the unix socket cannot live in it (a socket path has at most 107 bytes).
	dir := filepath.Join(parent, strings.Repeat("deep", 20), "pgdata")
	require.NoError(t, os.MkdirAll(filepath.Dir(dir), 0o755))

	srv, err := Start(ctx, Options{Dir: dir})
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, srv.SocketURL("postgres"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (x int)")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	sockDir := srv.sockDir
	require.NotEqual(t, dir, sockDir)
	require.NoError(t, srv.Stop())
	require.NoDirExists(t, sockDir)
	_, err = os.Stat(filepath.Join(dir, "PG_VERSION"))
	require.NoError(t, err, "a persistent data directory is kept")

	srv, err = Start(ctx, Options{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Stop()) })
	conn, err = pgx.Connect(ctx, srv.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n))
	require.Zero(t, n)
}

func TestStartSweepsStaleDirs(t *testing.T) {
	t.Parallel()

	// A pid that certainly belonged to a process that has exited.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	deadPID := cmd.ProcessState.Pid()

	stale, err := os.MkdirTemp(defaultTempRoot(), tempPrefix+"*")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(stale) })
	require.NoError(t, os.WriteFile(filepath.Join(stale, ownerFile), []byte(strconv.Itoa(deadPID)+" 1\n"), 0o644))

	live, err := os.MkdirTemp(defaultTempRoot(), tempPrefix+"*")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(live) })
	require.NoError(t, writeOwner(live))

	srv, err := Start(t.Context(), Options{})
	require.NoError(t, err)
	require.NoError(t, srv.Stop())

	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist, "the stale directory is removed")
	_, err = os.Stat(live)
	require.NoError(t, err, "a directory whose owner lives is kept")
}

func TestFindBinDir(t *testing.T) {
	t.Parallel()
	dir, err := FindBinDir()
	if errors.Is(err, ErrNotFound) {
		require.NotContains(t, err.Error(), "\n", "the error is one line")
		t.Skip(err)
	}
	require.NoError(t, err)
	for _, name := range []string{"initdb", "postgres", "pg_dump", "psql"} {
		require.FileExists(t, filepath.Join(dir, name))
	}
}
