package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/metrics"
	"github.com/tollgate/tollgate/sidecar"
	"github.com/tollgate/tollgate/sidecar/stripesync"
)

const serveUsage = `usage: tollgate serve --config FILE [--listen ADDR] [--metrics-listen ADDR] [--database-url URL] [--log-level LEVEL]

Runs the sidecar until SIGTERM or SIGINT, then finishes in-flight work and exits. On sidecar.listen (":8080"):
  POST /webhooks/stripe  Stripe webhooks (verified, recorded once, re-fetched from Stripe)
  GET  /healthz          the process is up
  GET  /                 the funnel page, when TOLLGATE_DASHBOARD_TOKEN (or a user and password) is set
On sidecar.metrics_listen ("127.0.0.1:8081", this host only):
  GET  /metrics          Prometheus metrics
  GET  /readyz           the database is reachable, migrated to this version, and every component is ready
  GET  /healthz
and reconciles every Stripe subscription at start and every stripe.reconcile_interval, sends upgrade prompts
from the outbox, and prunes the idempotency keys of consume and require hourly.

  --config FILE          tollgate.yaml (stripe:, sidecar:, email: sections)
  --listen ADDR          host:port of the webhook; default: sidecar.listen of the file (":8080")
  --metrics-listen ADDR  host:port of /metrics and /readyz; default: sidecar.metrics_listen ("127.0.0.1:8081");
                         the same as --listen serves every route on one address
  --database-url URL     a login role that is a member of tollgate_sidecar; default: $DATABASE_URL
  --log-level LEVEL      debug, info, warn or error (default info); logs are JSON on stderr, secrets masked

Environment: STRIPE_SECRET_KEY (without it, Stripe sync is off), STRIPE_WEBHOOK_SECRET (several separated by
commas while one is rolled), STRIPE_API_BASE (another Stripe endpoint, such as stripe-mock),
TOLLGATE_METRICS_TOKEN (when set, /metrics and /readyz require Authorization: Bearer TOKEN).
See docs/security.md for what is exposed where.
`

func init() {
	register(command{name: "serve", summary: "run the sidecar: Stripe webhooks and reconcile, components, /readyz and /metrics", run: runServe})
}

// A servePlugin adds routes or components to the sidecar of `tollgate serve`. A file of this package registers
// its own in init with plugServe, so plugging in a component (the mailer, the funnel page) edits no other file.
type servePlugin struct {
	name  string
	setup func(ctx context.Context, srv *sidecar.Server, env config.Env, deps serveDeps) error
}

// serveDeps is what serve built before the plugins that they may share.
type serveDeps struct {
	// Stripe is the Stripe client of the sync (one rate budget for the sidecar); nil without STRIPE_SECRET_KEY.
	Stripe *stripesync.Client
}

var servePlugins []servePlugin

// plugServe registers a plugin; call it from an init function. setup runs once the server, its pool, logger
// and metrics exist (srv.Pool(), srv.Logger(), srv.Metrics(), srv.Config()); it calls srv.Add and srv.Handle.
func plugServe(name string, setup func(ctx context.Context, srv *sidecar.Server, env config.Env, deps serveDeps) error) {
	servePlugins = append(servePlugins, servePlugin{name, setup})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return serveCmd(ctx, args, stdout, stderr, os.Getenv, nil)
}

// serveCmd is runServe with its environment passed in, and listeners to serve on instead of the configured
// addresses (tests): one serves every route; two serve sidecar.listen's routes and /metrics and /readyz.
func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, lns ...net.Listener) int {
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	configPath := flags.String("config", "", "")
	listen := flags.String("listen", "", "")
	metricsListen := flags.String("metrics-listen", "", "")
	dbURL := flags.String("database-url", "", "")
	logLevel := flags.String("log-level", "info", "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, serveUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tollgate serve: %v\n\n%s", err, serveUsage)
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate serve: unexpected argument %q\n\n%s", flags.Arg(0), serveUsage)
		return 2
	}
	if *configPath == "" {
		fmt.Fprintf(stderr, "tollgate serve: --config FILE is required\n\n%s", serveUsage)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "tollgate serve: --log-level: %v\n", err)
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr, "serve")
	if !ok {
		return 1
	}
	if *listen != "" {
		cfg.Sidecar.Listen = *listen
	}
	if *metricsListen != "" {
		cfg.Sidecar.MetricsListen = *metricsListen
	}
	env := config.EnvFrom(getenv)
	if *dbURL != "" {
		env.DatabaseURL = *dbURL
	}
	if env.DatabaseURL == "" {
		fmt.Fprintln(stderr, "tollgate serve: no database: set DATABASE_URL or pass --database-url")
		return 2
	}

	log := slog.New(sidecar.RedactHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})))
	pool, err := sidecarPool(ctx, env.DatabaseURL)
	if err != nil {
		log.Error("database", "err", err)
		return 1
	}
	defer pool.Close()
	reg := metrics.NewRegistry()
	srv := sidecar.New(cfg, pool, log, reg)
	srv.MetricsToken = env.MetricsToken
	if env.MetricsToken == "" && !loopbackOnly(cfg.Sidecar.MetricsListen) {
		log.Warn("/metrics and /readyz answer anyone who reaches sidecar.metrics_listen: set TOLLGATE_METRICS_TOKEN, or listen on loopback",
			"metrics_listen", cfg.Sidecar.MetricsListen)
	}

	var deps serveDeps
	syncer, err := stripesync.FromConfig(cfg, env, pool, log, reg)
	switch {
	case errors.Is(err, stripesync.ErrNoKey):
		log.Warn("STRIPE_SECRET_KEY is not set: Stripe sync is off (no webhooks, no reconcile)")
	case err != nil:
		log.Error("stripe sync", "err", err)
		return 1
	default:
		if env.StripeWebhookSecret == "" {
			log.Warn("STRIPE_WEBHOOK_SECRET is not set: /webhooks/stripe answers 503; reconcile still runs")
		}
		srv.Handle("POST /webhooks/stripe", syncer)
		srv.Add(syncer.Reconciler())
		srv.Add(syncer.Resumer())
		deps.Stripe = syncer.Client()
	}
	for _, p := range servePlugins {
		if err := p.setup(ctx, srv, env, deps); err != nil {
			log.Error("component setup failed", "component", p.name, "err", err)
			return 1
		}
	}

	lns = slices.DeleteFunc(lns, func(ln net.Listener) bool { return ln == nil })
	switch len(lns) {
	case 0:
		err = srv.Run(ctx)
	case 1:
		err = srv.Serve(ctx, lns[0])
	default:
		err = srv.ServeSplit(ctx, lns[0], lns[1])
	}
	if err != nil {
		log.Error("sidecar failed", "err", err)
		return 1
	}
	return 0
}

// loopbackOnly reports whether a listen address (host:port) is reachable from this host only.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadConfig loads tollgate.yaml and prints its mistakes and warnings.
func loadConfig(path string, stderr io.Writer, cmd string) (*config.Config, bool) {
	cfg, err := config.Load(path)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			fmt.Fprintln(stderr, errs.Error())
			fmt.Fprintf(stderr, "tollgate %s: %d mistake(s) in %s\n", cmd, len(errs), path)
		} else {
			fmt.Fprintf(stderr, "tollgate %s: %v\n", cmd, err)
		}
		return nil, false
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, w)
	}
	return cfg, true
}

// sidecarPool connects lazily: the sidecar starts while the database is still down, and /readyz says so.
func sidecarPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		// the parser's message may repeat the URL, password included
		return nil, errors.New("the database URL is not a valid PostgreSQL connection string")
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "tollgate-sidecar"
	}
	return pgxpool.NewWithConfig(ctx, pc)
}
