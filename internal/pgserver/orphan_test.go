package pgserver

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

const helperEnv = "TOLLGATE_PGSERVER_HELPER"

// TestHelperServer is not a test: TestKilledOwnerTakesPostgresAlong runs it in a child process, which
// starts a server, reports it and waits to be killed.
func TestHelperServer(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process only")
	}
	srv, err := Start(t.Context(), Options{})
	require.NoError(t, err)
	fmt.Printf("server %d %s\n", srv.PID(), srv.DataDir())
	select {}
}

func TestKilledOwnerTakesPostgresAlong(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServer$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var pid int
	var dataDir string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "server" {
			pid, _ = strconv.Atoi(f[1])
			dataDir = f[2]
			break
		}
	}
	require.NotZero(t, pid, "the helper reported its server")
	require.NoError(t, syscall.Kill(pid, 0))

	// SIGKILL leaves the owner no chance to clean up: Pdeathsig must stop postgres.
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	require.True(t, WaitExit(pid, stopTimeout), "postgres (pid %d) outlived its killed owner", pid)

	root := strings.TrimSuffix(dataDir, "/data")
	require.DirExists(t, root, "nobody cleaned up yet")
	sweepStale(t.Logf)
	require.NoDirExists(t, root, "the next start sweeps the directory of a dead owner")
}
