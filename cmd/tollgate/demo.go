package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/internal/schema"
)

const demoUsage = `usage: tollgate demo

Starts a throwaway PostgreSQL (Debian's postgresql package), migrates it, shows the SQL API that a
Django app's database role may call, and removes everything again. Needs no configuration.
`

func init() {
	register(command{name: "demo", summary: "run tollgate end to end against a throwaway PostgreSQL", run: runDemo})
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, demoUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tollgate demo: %v\n\n%s", err, demoUsage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate demo: unexpected argument %q\n\n%s", fs.Arg(0), demoUsage)
		return 2
	}
	if err := demo(ctx, stdout); err != nil {
		printMigrateError(stderr, err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, out io.Writer) (err error) {
	fmt.Fprintln(out, "== starting a throwaway PostgreSQL")
	srv, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := srv.Stop(); stopErr != nil && err == nil {
			err = stopErr
		} else if stopErr == nil {
			fmt.Fprintln(out, "== stopped PostgreSQL and removed its data directory")
		}
	}()
	fmt.Fprintf(out, "PostgreSQL from %s at %s\n", srv.BinDir(), srv.URL("postgres"))

	conn, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	fmt.Fprintln(out, "\n== tollgate migrate")
	res, err := schema.Migrate(ctx, conn, schema.Latest, out)
	if err != nil {
		return err
	}
	latest, err := schema.LatestVersion()
	if err != nil {
		return err
	}
	var pgVersion string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&pgVersion); err != nil {
		return err
	}
	fmt.Fprintf(out, "schema version %d (latest %d) on PostgreSQL %s; %d migrations applied\n", res.To, latest, pgVersion, len(res.Applied))

	for _, role := range []string{"tollgate_app", "tollgate_sidecar"} {
		fmt.Fprintf(out, "\n== functions %s may call\n", role)
		rows, err := conn.Query(ctx, `
			SELECT format('%s(%s) -> %s', p.oid::regproc, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid))
			FROM pg_proc p
			WHERE p.pronamespace = 'tollgate'::regnamespace AND has_function_privilege($1, p.oid, 'EXECUTE')
			ORDER BY p.proname, pg_get_function_arguments(p.oid)`, role)
		if err != nil {
			return err
		}
		fns, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, fn := range fns {
			fmt.Fprintf(out, "  %s\n", fn)
		}
	}
	fmt.Fprintln(out)
	return nil
}
