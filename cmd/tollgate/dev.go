package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/examples"
	"github.com/tollgate/tollgate/internal/apply"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/internal/schema"
)

const devUsage = `usage: tollgate dev [--data DIR] [--port N] [--listen ADDR] [--config FILE]

Runs tollgate for development until Ctrl-C: a PostgreSQL whose data is kept in DIR (a restart keeps
usage, customers and emails), migrated, with the configuration applied, and the sidecar. It prints
the DATABASE_URL to put in the Django settings (a role that is a member of tollgate_app, as in
production), the webhook URL for ` + "`stripe listen --forward-to`" + `, and where emails go.

  --data DIR     the data directory (default .tollgate/dev)
  --port N       PostgreSQL's port on 127.0.0.1 (default 54329)
  --listen ADDR  the sidecar's address (default 127.0.0.1:8080)
  --config FILE  tollgate.yaml (default ./tollgate.yaml if there is one, else the example, written to DIR)

Stripe sync runs when STRIPE_SECRET_KEY is set (a test-mode key, with ` + "`stripe listen`" + `); emails go
where email.provider says (log prints them here).
`

func init() {
	register(command{name: "dev", summary: "run PostgreSQL (data kept) and the sidecar for development, until Ctrl-C", run: runDev})
}

// The login role the Django app uses in development: a member of tollgate_app, like in production.
const devAppRole, devAppPassword = "tollgate_dev_app", "dev"

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("dev", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	dataDir := flags.String("data", filepath.Join(".tollgate", "dev"), "")
	port := flags.Int("port", 54329, "")
	listen := flags.String("listen", "127.0.0.1:8080", "")
	configPath := flags.String("config", "", "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, devUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tollgate dev: %v\n\n%s", err, devUsage)
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate dev: unexpected argument %q\n\n%s", flags.Arg(0), devUsage)
		return 2
	}
	if *port < 1 || *port > 65535 {
		fmt.Fprintf(stderr, "tollgate dev: --port %d is not a port\n", *port)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tollgate dev: %v\n", err)
		return 1
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	if err := reachableByOthers(dir); err != nil {
		return fail(err)
	}
	if *configPath == "" {
		*configPath = "tollgate.yaml"
		if _, err := os.Stat(*configPath); err != nil {
			*configPath = filepath.Join(dir, "tollgate.yaml")
			if _, err := os.Stat(*configPath); err != nil {
				if err := os.WriteFile(*configPath, examples.TollgateYAML, 0o644); err != nil {
					return fail(err)
				}
			}
		}
	}
	cfg, ok := loadConfig(*configPath, stderr, "dev")
	if !ok {
		return 1
	}

	srv, err := pgserver.Start(ctx, pgserver.Options{Dir: filepath.Join(dir, "postgres"), Port: *port})
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintf(stderr, "tollgate dev: stopping PostgreSQL: %v\n", err)
			return
		}
		fmt.Fprintf(stdout, "stopped PostgreSQL; its data stays in %s\n", dir)
	}()
	ownerURL, appURL, err := devDatabase(ctx, srv, cfg, stdout)
	if err != nil {
		return fail(err)
	}

	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return fail(fmt.Errorf("--listen %q: %w", *listen, err))
	}
	fmt.Fprintf(stdout, `
tollgate dev is running (Ctrl-C stops it).

  Django settings:   DATABASE_URL=%s
  owner (psql):      %s
  Stripe webhooks:   http://%s/webhooks/stripe
                     stripe listen --forward-to %s/webhooks/stripe
  emails:            %s
  configuration:     %s (tollgate apply it again after editing)

`, appURL, ownerURL, *listen, *listen, emailDestination(cfg), *configPath)
	// on this machine only: every route on the one address
	return serveCmd(ctx, []string{"--config", *configPath, "--listen", *listen, "--metrics-listen", *listen, "--database-url", ownerURL},
		stdout, stderr, os.Getenv, nil)
}

// devDatabase creates (once) the database and the app's login role, migrates and applies cfg. It returns the
// owner's URL and the app role's.
func devDatabase(ctx context.Context, srv *pgserver.Server, cfg *config.Config, out io.Writer) (ownerURL, appURL string, err error) {
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return "", "", err
	}
	defer admin.Close(context.Background())
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = 'tollgate')`).Scan(&exists); err != nil {
		return "", "", err
	}
	if !exists {
		if _, err := admin.Exec(ctx, `CREATE DATABASE tollgate`); err != nil {
			return "", "", err
		}
	}
	ownerURL = srv.URL("tollgate")
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return "", "", err
	}
	defer conn.Close(context.Background())
	if _, err := schema.Migrate(ctx, conn, schema.Latest, out); err != nil {
		return "", "", err
	}
	// The app's role: calls tollgate's functions, owns the app's own tables (Django migrates them).
	// The server quotes the names: format's %I and %L.
	var roleExists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, devAppRole).Scan(&roleExists); err != nil {
		return "", "", err
	}
	var create, grant string
	if err := conn.QueryRow(ctx, `SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE tollgate_app', $1::text, $2::text),
	                                     format('GRANT CREATE ON SCHEMA public TO %I', $1::text)`,
		devAppRole, devAppPassword).Scan(&create, &grant); err != nil {
		return "", "", err
	}
	if !roleExists {
		if _, err := conn.Exec(ctx, create); err != nil {
			return "", "", err
		}
	}
	if _, err := conn.Exec(ctx, grant); err != nil {
		return "", "", err
	}
	if _, err := apply.Apply(ctx, conn, cfg, apply.Options{}, out); err != nil {
		return "", "", err
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(devAppRole, devAppPassword),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port())), Path: "/tollgate", RawQuery: "sslmode=disable"}
	return ownerURL, u.String(), nil
}

func emailDestination(cfg *config.Config) string {
	switch cfg.Email.Provider {
	case "smtp":
		return "SMTP (SMTP_URL)"
	case "resend":
		return "Resend (RESEND_API_KEY)"
	}
	return "printed here (email.provider: log)"
}

// reachableByOthers checks, when running as root, that every directory above dir can be entered by other
// users: PostgreSQL then runs as the postgres OS user and must reach its data directory.
func reachableByOthers(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("--data %s: PostgreSQL runs as the postgres user, which cannot enter %s (mode %v); "+
				"choose a data directory it can reach, e.g. --data /var/tmp/tollgate-dev", dir, d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
