package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/citus"
	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/migrations"
	sqlapi "github.com/tollgate/tollgate/sql"
)

const migrateUsage = `usage: tollgate migrate [--database-url URL] [--to N] [--citus]

Brings the tollgate schema of the database to version N (default: the latest), one transaction per
migration, and prints each migration it runs. At the latest version it then installs the SQL API (the
code package sql/ built into tollgate) in one transaction when it differs from the installed one,
dropping the tollgate functions it no longer defines. The version is kept in public.schema_version
and the installed package in tollgate.code_package, so tern migrate --migrations migrations followed
by tern code install sql gives the same result. Going below the latest version drops the functions
first (with the row gates that use them); --to 0 removes the tollgate schema and everything in it
(the cluster-wide roles tollgate_app and tollgate_sidecar stay).

  --database-url URL  a role that may create schemas and roles; default: $DATABASE_URL
  --to N              the target version (0 to the latest)
  --citus             the database is the coordinator of a Citus cluster: after migrating, distribute
                      tollgate (per-customer tables by customer, the configuration as reference tables,
                      consume/check/require/refund/note_blocked delegated to the customer's worker); see
                      docs/scaling.md. Once distributed, every later tollgate migrate keeps it so.
`

func init() {
	register(command{name: "migrate", summary: "bring the database's tollgate schema to the latest (or a given) version", run: runMigrate})
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return migrateCmd(ctx, args, stdout, stderr, os.Getenv, migrations.FS, sqlapi.FS)
}

// migrateCmd is runMigrate with its environment, migrations and code package passed in (tests pass
// their own).
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, fsys, codeFS fs.FS) int {
	flags := flag.NewFlagSet("migrate", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	dbURL := flags.String("database-url", "", "")
	to := flags.String("to", "", "")
	onCitus := flags.Bool("citus", false, "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, migrateUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tollgate migrate: %v\n\n%s", err, migrateUsage)
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate migrate: unexpected argument %q\n\n%s", flags.Arg(0), migrateUsage)
		return 2
	}
	target := schema.Latest
	if *to != "" {
		n, err := strconv.ParseInt(*to, 10, 32)
		if err != nil || n < 0 {
			fmt.Fprintf(stderr, "tollgate migrate: --to wants a version number (0 or more), not %q\n", *to)
			return 2
		}
		target = int32(n)
	}
	conn, cfg, code := connectFlag(ctx, "migrate", *dbURL, getenv, stderr)
	if conn == nil {
		return code
	}
	defer conn.Close(context.Background())

	fmt.Fprintf(stdout, "database %s\n", describe(cfg))
	onCluster, err := citusWanted(ctx, conn, *onCitus, target, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate migrate: %v\n", err)
		return 1
	}
	if onCluster {
		_, err = citus.Migrate(ctx, conn, fsys, codeFS, stdout)
	} else {
		_, err = schema.MigrateFS(ctx, conn, fsys, codeFS, target, stdout)
	}
	if err != nil {
		printMigrateError(stderr, err)
		return 1
	}
	return 0
}

// citusWanted says whether to migrate the Citus way (citus.Migrate): when --citus asks for it, or when a
// previous migrate --citus distributed tollgate (then every migrate keeps it so).
func citusWanted(ctx context.Context, conn *pgx.Conn, asked bool, target int32, out io.Writer) (bool, error) {
	distributed, err := citus.IsDistributed(ctx, conn)
	if err != nil {
		return false, err
	}
	switch {
	case !asked && !distributed:
		return false, nil
	case target != schema.Latest && asked:
		return false, errors.New("--citus distributes the latest version: leave out --to")
	case target != schema.Latest:
		return false, nil // going down on a cluster: the plain way (docs/scaling.md)
	}
	if has, err := citus.HasExtension(ctx, conn); err != nil {
		return false, err
	} else if !has {
		return false, fmt.Errorf("--citus: %w", citus.ErrNoCitus)
	}
	if !asked {
		fmt.Fprintln(out, "citus: tollgate is distributed on this cluster; keeping it so")
	}
	return true, nil
}

// printMigrateError prints a failed migration (or code package install) as
//
//	tollgate: migration 004_bad.sql failed
//	  SQLSTATE 42601: syntax error at or near "SELEC"
//	  DETAIL: ...
//	  HINT: ...
//	  CONTEXT: ...
//	  line 3: SELEC 1;
func printMigrateError(w io.Writer, err error) {
	var me *schema.MigrationError
	if errors.As(err, &me) {
		fmt.Fprint(w, "tollgate: "+me.Report())
		return
	}
	fmt.Fprintf(w, "tollgate: migrate: %v\n", err)
}

// describe names a connection without its password: user@host:port/database.
func describe(cfg *pgx.ConnConfig) string {
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, host, cfg.Port, cfg.Database)
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactURL hides the password of a postgres:// URL or of a key=value connection string.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if strings.Contains(s, "://") {
		return "(unparsable URL)"
	}
	return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
}

// scrub is err's message with every password of connString replaced, whatever the error quotes.
func scrub(err error, connString string) string {
	msg := err.Error()
	var secrets []string
	if u, perr := url.Parse(connString); perr == nil && u.Scheme != "" {
		if pw, has := u.User.Password(); has {
			secrets = append(secrets, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
		secrets = append(secrets, u.Query()["password"]...)
	}
	for _, m := range dsnPassword.FindAllStringSubmatch(connString, -1) {
		secrets = append(secrets, m[2], strings.Trim(m[2], "'"))
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

// connectFlag connects to dbURL, or to $DATABASE_URL when it is empty, for the command named cmd. On failure
// it writes why to stderr (passwords masked) and returns the exit code: 2 for a missing or invalid URL, 1 when
// the server cannot be reached.
func connectFlag(ctx context.Context, cmd, dbURL string, getenv func(string) string, stderr io.Writer) (*pgx.Conn, *pgx.ConnConfig, int) {
	if dbURL == "" {
		dbURL = getenv("DATABASE_URL")
	}
	if dbURL == "" {
		fmt.Fprintf(stderr, "tollgate %s: no database: pass --database-url URL or set DATABASE_URL\n", cmd)
		return nil, nil, 2
	}
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate %s: invalid database URL %s: %s\n", cmd, redactURL(dbURL), scrub(err, dbURL))
		return nil, nil, 2
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate %s: %s\n", cmd, scrub(err, dbURL)) // names user, database and host
		return nil, nil, 1
	}
	return conn, cfg, 0
}
