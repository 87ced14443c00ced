package funnelpage

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chromiumMissing is the one line a run without a browser prints: CI (CI=true) fails with it, others skip.
const chromiumMissing = "chromium not found: install Debian's chromium package (apt-get install chromium)"

// chromium runs Debian's headless Chromium on url with extra flags and returns what it printed on stdout.
func chromium(t *testing.T, target string, flags ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(chromiumMissing)
		}
		t.Skip(chromiumMissing)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, target)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	require.NoError(t, err, "chromium %v: %s", flags, stderr.String())
	return stdout.Bytes()
}

// TestPageInChromium: a real browser renders the page (the token in the URL, as a bookmark would have it), and
// the charts it shows carry the numbers tollgate.funnel returns. A screenshot is kept in tests/artifacts.
func TestPageInChromium(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("chromium"); err != nil {
		chromium(t, "about:blank") // fails or skips with the package's name
	}
	b := setup(t)
	target := b.server.URL + "/?" + url.Values{"token": {testToken}, "since": {"30d"}}.Encode()

	dom := chromium(t, target, "--dump-dom")
	got := shown(t, string(dom))
	require.Equal(t, b.fromSQL(t), got, "the DOM chromium built:\n%s", dom)
	require.Len(t, got, 3)

	shot, err := filepath.Abs(filepath.Join("..", "..", "tests", "artifacts", "funnel.png"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(shot), 0o755))
	os.Remove(shot)
	chromium(t, target, "--screenshot="+shot, "--window-size=1200,900", "--hide-scrollbars")
	info, err := os.Stat(shot)
	require.NoError(t, err, "chromium wrote no screenshot")
	require.Greater(t, info.Size(), int64(10_000))
	t.Logf("screenshot: %s", shot)
}
