package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/sidecar"
	"github.com/tollgate/tollgate/sidecar/stripesync"
)

const syncUsage = `usage: tollgate sync [--config FILE] [--database-url URL]

Reconciles once: lists every Stripe subscription (status=all, page by page, throttled to
stripe.rate_per_second) and stores each, so every customer's plan equals what Stripe says, whatever
webhooks were missed. Shows a progress bar on a terminal and one line per page otherwise. Waits for
nothing: when a sidecar replica is reconciling right now, it says so and exits 1.

  --config FILE       tollgate.yaml (stripe.rate_per_second); default: the built-in defaults
  --database-url URL  a login role that is a member of tollgate_sidecar; default: $DATABASE_URL

Environment: STRIPE_SECRET_KEY (required), STRIPE_API_BASE (another Stripe endpoint, such as stripe-mock).
Exit status: 0 every subscription synced, 1 a failure (pages synced before it stay synced), 2 wrong arguments.
`

func init() {
	register(command{name: "sync", summary: "reconcile every Stripe subscription once, with progress", run: runSync})
}

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return syncCmd(ctx, args, stdout, stderr, os.Getenv, isTerminal(stderr))
}

// syncCmd is runSync with its environment passed in; tty draws a progress bar instead of lines.
func syncCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, tty bool) int {
	flags := flag.NewFlagSet("sync", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	configPath := flags.String("config", "", "")
	dbURL := flags.String("database-url", "", "")
	pageSize := flags.Int("page-size", stripesync.DefaultPageSize, "") // for tests; not in the usage
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, syncUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tollgate sync: %v\n\n%s", err, syncUsage)
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate sync: unexpected argument %q\n\n%s", flags.Arg(0), syncUsage)
		return 2
	}
	cfg := config.Defaults()
	if *configPath != "" {
		var ok bool
		if cfg, ok = loadConfig(*configPath, stderr, "sync"); !ok {
			return 1
		}
	}
	env := config.EnvFrom(getenv)
	if *dbURL != "" {
		env.DatabaseURL = *dbURL
	}
	if env.DatabaseURL == "" {
		fmt.Fprintln(stderr, "tollgate sync: no database: set DATABASE_URL or pass --database-url")
		return 2
	}
	if env.StripeSecretKey == "" {
		fmt.Fprintln(stderr, "tollgate sync: STRIPE_SECRET_KEY is not set")
		return 2
	}

	pool, err := sidecarPool(ctx, env.DatabaseURL)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate sync: %v\n", err)
		return 1
	}
	defer pool.Close()
	// warnings (prices no plan names) go to stderr as text; the progress goes there too
	log := slog.New(sidecar.RedactHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	client := stripesync.NewClient(stripesync.ClientOptions{
		Key: env.StripeSecretKey, APIBase: env.StripeAPIBase, RatePerSecond: cfg.Stripe.RatePerSecond,
	})
	syncer, err := stripesync.New(stripesync.Options{Pool: pool, Client: client, PageSize: *pageSize, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "tollgate sync: %v\n", err)
		return 1
	}
	bar := &progressBar{w: stderr, tty: tty}
	res, err := syncer.Reconcile(ctx, bar.report)
	bar.done()
	switch {
	case errors.Is(err, stripesync.ErrLocked):
		fmt.Fprintln(stderr, "tollgate sync: a sidecar is reconciling right now; nothing to do (try again later)")
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "tollgate sync: %s\n", config.Redact(err.Error()))
		fmt.Fprintf(stderr, "tollgate sync: %d subscriptions synced before the failure\n", res.Subscriptions)
		return 1
	}
	fmt.Fprintf(stdout, "synced %d subscriptions in %d pages (%s)\n", res.Subscriptions, res.Pages,
		res.Duration.Round(time.Millisecond))
	return 0
}

// progressBar draws reconcile progress: on a terminal, one line redrawn in place; otherwise a line per page.
// The total is what the last complete run synced (Stripe's lists do not count), so the bar stops short of full
// until the last page.
type progressBar struct {
	w     io.Writer
	tty   bool
	drawn bool
}

const barWidth = 30

func (b *progressBar) report(p stripesync.Progress) {
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Done) / s
	}
	if !b.tty {
		fmt.Fprintf(b.w, "synced %d subscriptions (page %d, %.0f/s)\n", p.Done, p.Pages, rate)
		return
	}
	line := fmt.Sprintf("%d subscriptions, %d pages, %.0f/s", p.Done, p.Pages, rate)
	if p.Expected > 0 || p.Finished {
		frac := 1.0
		if !p.Finished {
			frac = min(float64(p.Done)/float64(p.Expected), 0.99)
		}
		full := int(frac * barWidth)
		line = fmt.Sprintf("[%s%s] %3.0f%% %s", strings.Repeat("=", full), strings.Repeat(" ", barWidth-full), frac*100, line)
	}
	fmt.Fprintf(b.w, "\r\033[2K%s", line)
	b.drawn = true
}

func (b *progressBar) done() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
	}
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
