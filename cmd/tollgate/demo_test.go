package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/tests/pgtest"
)

// The demo is an end-to-end test of the whole loop: it checks every step itself
// and exits 0 only when all of them checked out.
func TestDemoChecksOut(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"demo"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	out := stdout.String()
	for _, want := range []string{
		"BLOCKED -> the app answers HTTP 402",
		"the 402's upgrade_url (tollgate.upgrade_link, minted in SQL): http://127.0.0.1:",
		"To: alice@example.test",
		"== alice clicks the email's upgrade link",
		"-> 303 See Other, Location: http://127.0.0.1:",
		"POST /webhooks/stripe checkout.session.completed -> 200 OK",
		"allowed=true on plan pro",
		"attributed to the click 1 of email 1",
		"1 hit the limit, 1 prompted, 1 clicked, 1 converted",
		"stopped PostgreSQL and removed its data directory",
		"Every step checked out.",
	} {
		require.Contains(t, out, want)
	}
	dir := dataDir(t, out)
	require.NoDirExists(t, filepath.Dir(dir))
}

// With --database-url the demo runs in a scratch database of that server and drops it.
func TestDemoOnAGivenServer(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmptyDB(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"demo", "--database-url", db.URL}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.Contains(t, stdout.String(), "Every step checked out.")
	require.Contains(t, stdout.String(), "dropped database tollgate_demo_")
	var left int
	require.NoError(t, db.Pool(t).QueryRow(context.Background(),
		`SELECT count(*) FROM pg_database WHERE datname LIKE 'tollgate_demo_%'`).Scan(&left))
	require.Zero(t, left)
}

// Interrupted midway (Ctrl-C), the demo stops PostgreSQL and leaves no directory behind.
func TestDemoInterruptedLeavesNothing(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "demo")
	cmd.Env = append(os.Environ(), "TOLLGATE_TEST_RUN_CLI=1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var dir string
	var postmaster int
	var seen strings.Builder
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		seen.WriteString(line + "\n")
		if strings.Contains(line, "data in ") && dir == "" {
			dir = strings.TrimSpace(line[strings.LastIndex(line, "data in ")+len("data in "):])
			pid, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
			require.NoError(t, err)
			postmaster, err = strconv.Atoi(strings.SplitN(string(pid), "\n", 2)[0])
			require.NoError(t, err)
		}
		if strings.Contains(line, "== a free customer") {
			require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
			break
		}
	}
	require.NotEmpty(t, dir, "demo output:\n%s", seen.String())
	for lines.Scan() {
		seen.WriteString(lines.Text() + "\n")
	}
	err = cmd.Wait()
	require.Error(t, err, "an interrupted demo must not exit 0")
	require.NoDirExists(t, filepath.Dir(dir), "output:\n%s\nstderr:\n%s", seen.String(), stderr.String())
	// the postmaster is gone (signal 0 probes a pid)
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(postmaster, 0) == nil {
		require.True(t, time.Now().Before(deadline), "postmaster %d still runs", postmaster)
		time.Sleep(20 * time.Millisecond)
	}
}

func dataDir(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if i := strings.LastIndex(line, "data in "); i >= 0 {
			return strings.TrimSpace(line[i+len("data in "):])
		}
	}
	t.Fatalf("no data directory in the output:\n%s", out)
	return ""
}
