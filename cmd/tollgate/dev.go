package main

import (
	"context"
	"encoding/json"
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
the database for the Django settings (a role that is a member of tollgate_app, as in production), as
a DATABASE_URL and as a DATABASES = {...} snippet, the URL for ` + "`tollgate report`" + ` (a member of
tollgate_sidecar), the owner's URL (psql, tollgate apply), where emails go and, when Stripe sync is
on, the webhook URL for ` + "`stripe listen --forward-to`" + `.

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

// The login roles of development, like in production: the Django app's (a member of tollgate_app) and
// the sidecar's (a member of tollgate_sidecar: tollgate report).
const (
	devAppRole, devAppPassword         = "tollgate_dev_app", "dev"
	devSidecarRole, devSidecarPassword = "tollgate_dev_sidecar", "dev"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return devCmd(ctx, args, stdout, stderr, os.Getenv)
}

// devCmd is runDev with its environment passed in (tests).
func devCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
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
	urls, err := devDatabase(ctx, srv, cfg, stdout)
	if err != nil {
		return fail(err)
	}

	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return fail(fmt.Errorf("--listen %q: %w", *listen, err))
	}
	writeDevBanner(stdout, devBanner{urls: urls, listen: *listen, stripe: getenv("STRIPE_SECRET_KEY") != "",
		emails: emailDestination(cfg), config: *configPath})
	// on this machine only: every route, /metrics and /readyz too, on the one address
	return serveCmd(ctx, []string{"--config", *configPath, "--listen", *listen, "--metrics-listen", *listen,
		"--database-url", urls.owner}, stdout, stderr, getenv, nil)
}

// devURLs are the roles of the development database: the owner (migrations, tollgate apply, psql), the
// app's role (a member of tollgate_app: Django) and the sidecar's (a member of tollgate_sidecar: tollgate
// report, tollgate sync).
type devURLs struct {
	owner, app, sidecar string
	// the app role's connection, for the DATABASES snippet
	host, port, name, user, password string
}

type devBanner struct {
	urls   devURLs
	listen string
	stripe bool // STRIPE_SECRET_KEY is set: the sidecar syncs Stripe and takes webhooks
	emails string
	config string
}

// writeDevBanner prints what the developer needs: the database for Django (a URL, and a DATABASES snippet
// for Django versions that read no URL), which URL each CLI command takes, emails, and Stripe's webhook URL
// only when Stripe sync is on.
func writeDevBanner(w io.Writer, b devBanner) {
	fmt.Fprintf(w, `
tollgate dev is running (Ctrl-C stops it).

  Django:            DATABASE_URL=%s
                     or in settings.py (Django 3.2 reads no URL):

    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": %s,
            "USER": %s,
            "PASSWORD": %s,
            "HOST": %s,
            "PORT": %s,
        }
    }

  tollgate report:   tollgate report --database-url %s
  owner (psql, tollgate apply, tollgate migrate):
                     %s
`, b.urls.app, pyString(b.urls.name), pyString(b.urls.user), pyString(b.urls.password), pyString(b.urls.host),
		pyString(b.urls.port), b.urls.sidecar, b.urls.owner)
	if b.stripe {
		fmt.Fprintf(w, `  Stripe webhooks:   http://%s/webhooks/stripe
                     stripe listen --forward-to %s/webhooks/stripe
`, b.listen, b.listen)
	} else {
		fmt.Fprintln(w, "  Stripe sync:       off (set STRIPE_SECRET_KEY to a test-mode key to sync and take webhooks)")
	}
	fmt.Fprintf(w, `  emails:            %s
  configuration:     %s (tollgate apply it again after editing)

`, b.emails, b.config)
}

// pyString is s as a Python string literal (JSON's quoting is valid Python for these values).
func pyString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// devDatabase creates (once) the database and the login roles of the app and the sidecar, migrates and
// applies cfg. It returns their URLs.
func devDatabase(ctx context.Context, srv *pgserver.Server, cfg *config.Config, out io.Writer) (urls devURLs, err error) {
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return urls, err
	}
	defer admin.Close(context.Background())
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = 'tollgate')`).Scan(&exists); err != nil {
		return urls, err
	}
	if !exists {
		if _, err := admin.Exec(ctx, `CREATE DATABASE tollgate`); err != nil {
			return urls, err
		}
	}
	ownerURL := srv.URL("tollgate")
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return urls, err
	}
	defer conn.Close(context.Background())
	if _, err := schema.Migrate(ctx, conn, schema.Latest, out); err != nil {
		return urls, err
	}
	// The app's role: calls tollgate's functions, owns the app's own tables (Django migrates them); it
	// may create databases, for Django's test database (tollgate_django.testing). The sidecar's role:
	// what tollgate report and tollgate sync need. The server quotes the names: format's %I and %L.
	for _, r := range []struct{ name, password, group, extra string }{
		{devAppRole, devAppPassword, "tollgate_app", "CREATEDB"},
		{devSidecarRole, devSidecarPassword, "tollgate_sidecar", ""},
	} {
		var roleExists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, r.name).Scan(&roleExists); err != nil {
			return urls, err
		}
		var create string
		if err := conn.QueryRow(ctx, `SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I', $1::text, $2::text, $3::text)`,
			r.name, r.password, r.group).Scan(&create); err != nil {
			return urls, err
		}
		if !roleExists {
			if _, err := conn.Exec(ctx, create); err != nil {
				return urls, err
			}
		}
	}
	var grant, createdb string
	if err := conn.QueryRow(ctx, `SELECT format('GRANT CREATE ON SCHEMA public TO %I', $1::text), format('ALTER ROLE %I CREATEDB', $1::text)`,
		devAppRole).Scan(&grant, &createdb); err != nil {
		return urls, err
	}
	for _, q := range []string{grant, createdb} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return urls, err
		}
	}
	if _, err := apply.Apply(ctx, conn, cfg, apply.Options{}, out); err != nil {
		return urls, err
	}
	port := strconv.Itoa(srv.Port())
	roleURL := func(user, password string) string {
		u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password),
			Host: net.JoinHostPort("127.0.0.1", port), Path: "/tollgate", RawQuery: "sslmode=disable"}
		return u.String()
	}
	return devURLs{owner: ownerURL, app: roleURL(devAppRole, devAppPassword), sidecar: roleURL(devSidecarRole, devSidecarPassword),
		host: "127.0.0.1", port: port, name: "tollgate", user: devAppRole, password: devAppPassword}, nil
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
