package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDev runs `tollgate dev` until the returned stop is called; it returns the app's DATABASE_URL once the
// sidecar answers /readyz.
func startDev(t *testing.T, dataDir string) (appURL string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	pr, pw := io.Pipe()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"dev", "--data", dataDir, "--port", strconv.Itoa(freePort(t)), "--listen", listen}, pw, &stderr)
		pw.Close()
	}()
	urls := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(pr)
		for lines.Scan() {
			if _, v, ok := strings.Cut(lines.Text(), "DATABASE_URL="); ok {
				urls <- strings.TrimSpace(v)
			}
		}
		close(urls)
	}()
	select {
	case appURL = <-urls:
	case c := <-code:
		t.Fatalf("tollgate dev exited with %d before it was ready: %s", c, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("tollgate dev printed no DATABASE_URL within 60s")
	}
	require.NotEmpty(t, appURL)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		require.True(t, time.Now().Before(deadline), "the sidecar of tollgate dev never became ready")
		time.Sleep(50 * time.Millisecond) // polling an external server until it answers
	}
	return appURL, func() int {
		cancel()
		return <-code
	}
}

// tollgate dev keeps its data: usage counted before a restart is there after it.
func TestDevKeepsDataAcrossRestarts(t *testing.T) {
	t.Parallel()
	// as root, PostgreSQL runs as the postgres OS user, which must be able to enter the data directory
	dir, err := os.MkdirTemp("", "tollgate-dev-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	consume := func(appURL string) int64 {
		conn, err := pgx.Connect(ctx, appURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var used int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT used FROM tollgate.consume('dev-user', 'api_calls')`).Scan(&used))
		return used
	}
	appURL, stop := startDev(t, dir)
	require.Contains(t, appURL, devAppRole)
	require.EqualValues(t, 1, consume(appURL))
	require.Equal(t, 0, stop())

	appURL, stop = startDev(t, dir)
	require.EqualValues(t, 2, consume(appURL))
	require.Equal(t, 0, stop())
}
