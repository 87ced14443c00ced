package pgserver

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// deadPID returns a pid that certainly belonged to a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.ProcessState.Pid()
}

// plant makes a tollgate-pg-* directory that looks like a stale throwaway cluster (a dead owner) whose
// data/postmaster.pid names pid, owned by uid:gid with mode perm.
func plant(t *testing.T, pid, uid, gid int, perm os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp(defaultTempRoot(), tempPrefix+"*")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(deadPID(t))+" 1\n"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "data"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "postmaster.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600))
	require.NoError(t, chownTree(dir, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}))
	require.NoError(t, os.Chmod(dir, perm))
	return dir
}

// The sweep runs as root in CI: a tollgate-pg-* directory anyone can plant must not make it signal a process
// that is not the stale postmaster of a directory it created itself.
func TestSweepLeavesPlantedDirsAlone(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("planting a directory of another user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	nuid, _ := strconv.Atoi(nobody.Uid)
	ngid, _ := strconv.Atoi(nobody.Gid)

	sleep := exec.Command("sleep", "300")
	require.NoError(t, sleep.Start())
	slept := make(chan struct{})
	go func() { sleep.Wait(); close(slept) }()
	t.Cleanup(func() { sleep.Process.Kill(); <-slept })

	// a real postmaster, of a cluster elsewhere
	srv, err := Start(t.Context(), Options{Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Stop() })

	me := os.Geteuid()
	kept := map[string]string{
		"another user's directory naming a postmaster": plant(t, srv.PID(), nuid, ngid, 0o700),
		"another user's directory naming a sleep":      plant(t, sleep.Process.Pid, nuid, ngid, 0o700),
		"a directory others may write":                 plant(t, srv.PID(), me, os.Getegid(), 0o777),
		"a directory its group may write":              plant(t, srv.PID(), me, os.Getegid(), 0o770),
	}
	// One of ours, truly stale, laid out as Start makes it (data/ is the server user's), but its
	// postmaster.pid names a postmaster whose data directory is elsewhere.
	ours := plant(t, srv.PID(), me, os.Getegid(), 0o711)
	cred, err := childCredential()
	require.NoError(t, err)
	require.NoError(t, chownTree(filepath.Join(ours, "data"), cred))

	sweepStale(t.Logf)

	// A process that was signalled and has exited is a zombie until reaped: look at its state, not at
	// whether it has been reaped yet.
	require.True(t, running(srv.PID()), "the sweep stopped a postmaster (pid %d) that was not the one of a directory it swept", srv.PID())
	conn, err := pgx.Connect(t.Context(), srv.URL("postgres"))
	require.NoError(t, err)
	require.NoError(t, conn.Ping(t.Context()))
	conn.Close(t.Context())
	require.True(t, running(sleep.Process.Pid), "the sweep killed a process named in a planted directory")
	for what, dir := range kept {
		require.DirExists(t, dir, "%s is left alone", what)
	}
	require.NoDirExists(t, ours, "a stale directory of ours is removed")
}

// running reports whether process pid exists and has not exited (is not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// A stale cluster of ours whose postmaster still runs (its owner died without Pdeathsig firing) is stopped
// and removed.
func TestSweepStopsTheStalePostmaster(t *testing.T) {
	t.Parallel()
	srv, err := Start(t.Context(), Options{Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Stop() })
	root := filepath.Dir(srv.DataDir())
	require.NoError(t, os.WriteFile(filepath.Join(root, ownerFile), []byte(strconv.Itoa(deadPID(t))+" 1\n"), 0o644))

	sweepStale(t.Logf)

	require.False(t, running(srv.PID()), "the stale postmaster (pid %d) still runs", srv.PID())
	require.NoDirExists(t, root)
}
