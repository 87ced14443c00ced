package pgtest_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/tests/pgtest"
)

const helperEnv = "TOLLGATE_PGTEST_HELPER"

// TestHelperInterrupted is not a test: TestInterruptCleansUp runs it in a child process, which takes a
// database, reports where its server lives and waits for a signal.
func TestHelperInterrupted(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process only")
	}
	db := pgtest.NewDB(t)
	var dataDir string
	require.NoError(t, db.Pool(t).QueryRow(t.Context(), "SHOW data_directory").Scan(&dataDir))
	pidFile, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	require.NoError(t, err)
	fmt.Printf("server %s %s\n", strings.SplitN(string(pidFile), "\n", 2)[0], dataDir)
	select {}
}

func TestInterruptCleansUp(t *testing.T) {
	t.Parallel()
	if os.Getenv(pgtest.EnvDatabaseURL) != "" {
		t.Skip("the helper would use the shared server; nothing to stop")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperInterrupted$")
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

	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	err = cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "exits non-zero, got %v", err)
	require.Equal(t, 128+int(syscall.SIGINT), exit.ExitCode())

	// The helper stopped postgres and removed its directory before exiting.
	require.True(t, pgserver.WaitExit(pid, time.Second), "postgres (pid %d) still runs", pid)
	require.NoDirExists(t, filepath.Dir(dataDir))
}
