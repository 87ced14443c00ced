package sqlapi_test

import (
	"context"
	"os"
	"strings"
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
	got := sqldocs.Render(objs)
	if got != string(want) {
		wantLines, gotLines := strings.Split(string(want), "\n"), strings.Split(got, "\n")
		for i := 0; i < len(wantLines) && i < len(gotLines); i++ {
			if wantLines[i] != gotLines[i] {
				t.Fatalf("docs/sql-api.md is out of date (line %d differs): run `make docs`", i+1)
			}
		}
		t.Fatalf("docs/sql-api.md is out of date (%d lines, want %d): run `make docs`", len(wantLines), len(gotLines))
	}
}
