package apply

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate/tollgate/internal/config"
)

// Usage is the help of `tollgate apply`.
const Usage = `usage: tollgate apply FILE [--database-url URL] [--dry-run] [--prune]

Makes the database hold the plans, features, limits and routes of FILE (a tollgate.yaml), in one transaction.
Prints one line per change: + added, ~ changed, - removed, = kept (in the database, not in the file).

  --database-url URL  the owner (migration) role's URL; default: $DATABASE_URL
  --dry-run           print the changes and roll them back
  --prune             remove what the file does not name (usage history is kept)

Exit status: 0 applied (or nothing to do), 1 a mistake in the file or a database error (nothing written),
2 wrong arguments.
`

// Run is `tollgate apply`: it returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr, os.Getenv)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dbURL := fs.String("database-url", "", "")
	dryRun := fs.Bool("dry-run", false, "")
	prune := fs.Bool("prune", false, "")
	// flags may come before or after FILE
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, Usage)
				return 0
			}
			fmt.Fprintf(stderr, "tollgate apply: %v\n%s", err, Usage)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		fmt.Fprintf(stderr, "tollgate apply: give exactly one FILE\n%s", Usage)
		return 2
	}
	if *dbURL == "" {
		*dbURL = getenv("DATABASE_URL")
	}

	cfg, err := config.Load(files[0])
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			fmt.Fprintln(stderr, errs.Error())
			fmt.Fprintf(stderr, "tollgate apply: %d %s in %s, nothing written\n", len(errs), plural(len(errs), "mistake", "mistakes"), files[0])
		} else {
			fmt.Fprintf(stderr, "tollgate apply: %v\n", err)
		}
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, w)
	}
	if *dbURL == "" {
		fmt.Fprintln(stderr, "tollgate apply: no database: set DATABASE_URL or pass --database-url")
		return 2
	}

	connCfg, err := pgx.ParseConfig(*dbURL)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate apply: database URL: %v\n", err)
		return 2
	}
	if _, ok := connCfg.RuntimeParams["application_name"]; !ok {
		connCfg.RuntimeParams["application_name"] = "tollgate apply"
	}
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate apply: connect: %v\n", err)
		return 1
	}
	defer conn.Close(context.WithoutCancel(ctx))

	res, err := Apply(ctx, conn, cfg, Options{DryRun: *dryRun, Prune: *prune}, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate apply: %s\n", describe(err))
		fmt.Fprintln(stderr, "tollgate apply: nothing written")
		return 1
	}
	_, kept := Counts(res.Changes)
	switch {
	case res.Writes == 0:
		fmt.Fprint(stdout, "no changes")
	case *dryRun:
		fmt.Fprintf(stdout, "dry run: %d %s, rolled back", res.Writes, plural(res.Writes, "change", "changes"))
	default:
		fmt.Fprintf(stdout, "applied %d %s", res.Writes, plural(res.Writes, "change", "changes"))
	}
	if kept > 0 {
		fmt.Fprintf(stdout, "; %d kept (not in file; use --prune)", kept)
	}
	fmt.Fprintln(stdout)
	return 0
}

// describe gives a database error with its SQLSTATE, DETAIL and HINT, and what to do for the usual causes.
func describe(err error) string {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return err.Error()
	}
	var b strings.Builder
	b.WriteString(err.Error())
	if pg.Detail != "" {
		b.WriteString("\nDETAIL: " + pg.Detail)
	}
	hint := pg.Hint
	switch pg.Code {
	case "42501": // insufficient_privilege
		hint = "tollgate apply must run as the owner role, the one that ran tollgate migrate (the app's role cannot change the configuration)"
	case "3F000", "42P01", "42883": // invalid_schema_name, undefined_table, undefined_function
		hint = "is the database migrated? Run tollgate migrate first"
	}
	if hint != "" {
		b.WriteString("\nHINT: " + hint)
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
