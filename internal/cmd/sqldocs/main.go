// Command sqldocs writes docs/sql-api.md from a freshly migrated throwaway
// database: `make docs` runs it.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/internal/sqldocs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sqldocs:", err)
		os.Exit(1)
	}
}

func run() error {
	out := "docs/sql-api.md"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	ctx := context.Background()
	srv, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return err
	}
	defer srv.Stop()
	conn, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := schema.Migrate(ctx, conn, -1, nil); err != nil {
		return err
	}
	objs, err := sqldocs.Load(ctx, conn)
	if err != nil {
		return err
	}
	return os.WriteFile(out, []byte(sqldocs.Render(objs)), 0o644)
}
