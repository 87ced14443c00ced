package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
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
	appURL, _, stop = startDevBanner(t, dataDir)
	return appURL, stop
}

// startDevBanner is startDev, also returning what tollgate dev printed up to its configuration line.
func startDevBanner(t *testing.T, dataDir string) (appURL, banner string, stop func() int) {
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
	urls := make(chan [2]string, 1)
	go func() {
		lines := bufio.NewScanner(pr)
		var text strings.Builder
		url := ""
		for lines.Scan() {
			text.WriteString(lines.Text() + "\n")
			if _, v, ok := strings.Cut(lines.Text(), "DATABASE_URL="); ok {
				url = strings.TrimSpace(v)
			}
			if strings.Contains(lines.Text(), "configuration:") && url != "" {
				urls <- [2]string{url, text.String()}
			}
		}
		close(urls)
	}()
	select {
	case got := <-urls:
		appURL, banner = got[0], got[1]
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
	return appURL, banner, func() int {
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

// What tollgate dev prints works as printed: the DATABASES snippet names the same role and database as the
// DATABASE_URL, the URL printed for tollgate report is one report can run with, and without
// STRIPE_SECRET_KEY no webhook URL or stripe listen line is printed.
func TestDevPrintsWhatEachCommandNeeds(t *testing.T) {
	t.Parallel()
	require.Empty(t, os.Getenv("STRIPE_SECRET_KEY"), "this test runs tollgate dev without Stripe")
	dir, err := os.MkdirTemp("", "tollgate-dev-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	appURL, banner, stop := startDevBanner(t, dir)
	defer func() { require.Equal(t, 0, stop()) }()

	u, err := url.Parse(appURL)
	require.NoError(t, err)
	password, _ := u.User.Password()
	for key, want := range map[string]string{"ENGINE": "django.db.backends.postgresql", "NAME": strings.TrimPrefix(u.Path, "/"),
		"USER": u.User.Username(), "PASSWORD": password, "HOST": u.Hostname(), "PORT": u.Port()} {
		require.Contains(t, banner, strconv.Quote(key)+": "+strconv.Quote(want)+",", key)
	}
	require.Contains(t, banner, "DATABASES = {")
	require.NotContains(t, banner, "stripe listen")
	require.NotContains(t, banner, "/webhooks/stripe")
	require.Contains(t, banner, "STRIPE_SECRET_KEY")

	_, reportLine, ok := strings.Cut(banner, "tollgate report --database-url ")
	require.True(t, ok, banner)
	reportURL := strings.Fields(reportLine)[0]
	code, out, errOut := report(t, map[string]string{}, "--database-url", reportURL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "Conversion funnel")
	// the app's role may not: report says which role it needs
	code, _, errOut = report(t, map[string]string{}, "--database-url", appURL)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "tollgate_sidecar")
}

func TestDevBannerWithStripe(t *testing.T) {
	var b strings.Builder
	writeDevBanner(&b, devBanner{urls: devURLs{app: "postgres://a", sidecar: "postgres://s", owner: "postgres://o"},
		listen: "127.0.0.1:8080", stripe: true, emails: "log", config: "tollgate.yaml"})
	require.Contains(t, b.String(), "stripe listen --forward-to 127.0.0.1:8080/webhooks/stripe")
	require.NotContains(t, b.String(), "Stripe sync:       off")
}
