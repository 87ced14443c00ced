package sqlapi_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/sqldocs"
)

// The SQL reference is generated from the catalog; this fails when it is out
// of date or when a public object has no comment.
func TestSQLDocsAreCurrent(t *testing.T) {
	t.Parallel()
	db := setup(t).db
	ctx := context.Background()
	conn := db.Conn(t, db.URL)
	objs, err := sqldocs.Load(ctx, conn)
	require.NoError(t, err)
	for _, o := range objs {
		require.NotEmpty(t, o.Comment, "%s has no COMMENT", o.Signature)
	}
	want, err := os.ReadFile("../../docs/sql-api.md")
	require.NoError(t, err)
	require.Equal(t, string(want), sqldocs.Render(objs), "docs/sql-api.md is out of date: run `make docs` (go run ./internal/cmd/sqldocs)")
}
