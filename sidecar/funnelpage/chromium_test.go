package funnelpage

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/funnel/funneltest"
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

// TestPageInChromium: a real browser renders the page (the token in the URL, as a bookmark would have it): the
// charts it shows carry the numbers tollgate.funnel returns, the experiment's table the numbers of
// tollgate.experiment_results with short as the winner, and the screenshot (kept in tests/artifacts) shows the
// experiment's chart: a line of each variant's colour, short's above control's.
func TestPageInChromium(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("chromium"); err != nil {
		chromium(t, "about:blank") // fails or skips with the package's name
	}
	b := setup(t)
	target := b.server.URL + "/?" + url.Values{"token": {testToken}, "since": {"30d"}}.Encode()

	dom := chromium(t, target, "--dump-dom")
	got := shown(t, string(dom))
	require.Equal(t, b.fromSQL(t, "30d"), got, "the DOM chromium built:\n%s", dom)
	require.Len(t, got, 4)
	exp, winner := shownExperiment(t, string(dom))
	require.Equal(t, funneltest.WantExperiment, exp)
	require.Equal(t, "short", winner)

	shot, err := filepath.Abs(filepath.Join("..", "..", "tests", "artifacts", "funnel.png"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(shot), 0o755))
	os.Remove(shot)
	chromium(t, target, "--screenshot="+shot, "--window-size=1200,2000", "--hide-scrollbars")
	f, err := os.Open(shot)
	require.NoError(t, err, "chromium wrote no screenshot")
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	// the lines: pixels of exactly each variant's colour (the table's swatches are lighter), and where they are
	control, short := colourRows(img, variantColors[0]), colourRows(img, variantColors[1])
	require.Greater(t, len(control), 300, "control's line is drawn")
	require.Greater(t, len(short), 300, "short's line is drawn")
	require.Less(t, mean(short), mean(control), "short converts more: its line is higher on the page")
	t.Logf("screenshot: %s", shot)
}

// colourRows lists the y of every pixel of img of exactly colour ("#rrggbb").
func colourRows(img image.Image, colour string) []int {
	var want [3]uint8
	_, err := fmt.Sscanf(colour, "#%02x%02x%02x", &want[0], &want[1], &want[2])
	if err != nil {
		panic(err)
	}
	var ys []int
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == want[0] && uint8(g>>8) == want[1] && uint8(b>>8) == want[2] {
				ys = append(ys, y)
			}
		}
	}
	return ys
}

func mean(ys []int) float64 {
	sum := 0
	for _, y := range ys {
		sum += y
	}
	return float64(sum) / float64(len(ys))
}
