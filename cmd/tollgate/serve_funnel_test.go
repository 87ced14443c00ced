package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/funnel/funneltest"
	"github.com/tollgate/tollgate/tests/pgtest"
)

// serveFunnel runs tollgate serve (no Stripe key: sync off) with env on top of a database holding funneltest's
// funnel, and returns its base URL; it stops at the end of the test. A serve that cannot start returns its exit
// code instead.
func serveFunnel(t *testing.T, env map[string]string) (base string, exitedEarly int, stderr *lockedBuffer) {
	t.Helper()
	db := pgtest.NewDB(t)
	funneltest.Seed(t, db.Pool(t))
	env["DATABASE_URL"] = db.SidecarURL
	cfgPath := filepath.Join(t.TempDir(), "tollgate.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(serveConfig), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	exited := make(chan int, 1)
	stderr = &lockedBuffer{}
	go func() {
		var stdout bytes.Buffer
		exited <- serveCmd(ctx, []string{"--config", cfgPath}, &stdout, stderr, func(k string) string { return env[k] }, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	// the first request on the listener is answered once the server serves; a serve that gives up exits instead
	up := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		up <- err
	}()
	select {
	case err := <-up:
		require.NoError(t, err)
		return "http://" + ln.Addr().String(), 0, stderr
	case code := <-exited:
		ln.Close()
		<-up
		exited <- code // for the cleanup
		return "", code, stderr
	}
}

func getPage(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestServeFunnelPage(t *testing.T) {
	t.Parallel()
	const token = "dashboard-token-123"
	base, early, stderr := serveFunnel(t, map[string]string{"TOLLGATE_DASHBOARD_TOKEN": token})
	require.Zero(t, early, stderr.String())
	code, body := getPage(t, base+"/", token)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<svg data-feature="api"`)
	require.Contains(t, body, `data-stage="prompted">20<`)
	code, _ = getPage(t, base+"/", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = getPage(t, base+"/?token="+token, "")
	require.Equal(t, http.StatusOK, code)
	code, _ = getPage(t, base+"/elsewhere", token)
	require.Equal(t, http.StatusNotFound, code)
	require.NotContains(t, stderr.String(), token)
}

func TestServeFunnelPageOff(t *testing.T) {
	t.Parallel()
	base, early, stderr := serveFunnel(t, map[string]string{})
	require.Zero(t, early, stderr.String())
	code, _ := getPage(t, base+"/", "anything")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, stderr.String(), "funnel page off")
}

func TestServeFunnelPageHalfBasicAuth(t *testing.T) {
	t.Parallel()
	_, early, stderr := serveFunnel(t, map[string]string{"TOLLGATE_DASHBOARD_USER": "ops"})
	require.Equal(t, 1, early)
	require.Contains(t, stderr.String(), "TOLLGATE_DASHBOARD_PASSWORD")
}
