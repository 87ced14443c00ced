package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const previewConfig = `plans:
  free: { default: true }
features:
  api_calls:
    period: 30d
    limits: { free: 100 }
    upgrade_prompt: { email: upgrade_prompt }
  exports:
    period: month
    limits: { free: 3 }
email:
  from: "Acme <billing@acme.test>"
  upgrade_url: https://acme.test/pricing
`

func TestPreviewEmail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tollgate.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(previewConfig), 0o600))

	r := runCLI(t, nil, nil, "preview-email", "api_calls", "--config", cfgPath)
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{"From: Acme <billing@acme.test>", "Subject: You've reached your api calls limit",
		"You've used 100 of the 100 api calls included in the free plan", "https://acme.test/pricing", "--- html\n<!DOCTYPE html>"} {
		require.Contains(t, r.stdout, want)
	}
	r = runCLI(t, nil, nil, "preview-email", "--config", cfgPath, "api_calls")
	require.Equal(t, 0, r.code, r.stderr)

	r = runCLI(t, nil, nil, "preview-email", "exports", "--config", cfgPath)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "feature exports sends no email")

	r = runCLI(t, nil, nil, "preview-email", "--config", cfgPath)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "name one FEATURE")

	r = runCLI(t, nil, nil, "preview-email", "api_calls", "--config", filepath.Join(dir, "missing.yaml"))
	require.Equal(t, 1, r.code)

	// a broken override fails here as it would at the start of tollgate serve
	require.NoError(t, os.Mkdir(filepath.Join(dir, "emails"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "emails", "upgrade_prompt.txt.tmpl"), []byte("{{.Nope}}"), 0o600))
	require.NoError(t, os.WriteFile(cfgPath, []byte(previewConfig+"  templates: emails\n"), 0o600))
	r = runCLI(t, nil, nil, "preview-email", "api_calls", "--config", cfgPath)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "can't evaluate field Nope")

	r = runCLI(t, nil, nil, "help", "preview-email")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "usage: tollgate preview-email FEATURE")
}
