package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/tests/pgtest"
)

// TestApplyCommand: `tollgate apply` is registered and applies the example once; internal/apply tests the rest.
func TestApplyCommand(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	const example = "../../examples/tollgate.yaml"

	r := runCLI(t, nil, nil, "apply", example, "--database-url", db.URL, "--dry-run")
	require.Equal(t, 0, r.code, r.stderr)
	require.True(t, strings.HasSuffix(r.stdout, "rolled back\n"), r.stdout)

	r = runCLI(t, nil, nil, "apply", example, "--database-url", db.URL)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "+ plan free\n")

	r = runCLI(t, nil, nil, "apply", "--database-url", db.URL, example)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "no changes\n", r.stdout)

	r = runCLI(t, nil, nil, "help", "apply")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "usage: tollgate apply FILE")
}
