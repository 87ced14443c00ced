package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/examples"
	"github.com/tollgate/tollgate/internal/apply"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/metrics"
	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/sidecar"
	"github.com/tollgate/tollgate/sidecar/mailer"
	"github.com/tollgate/tollgate/sidecar/stripesync"
	"github.com/tollgate/tollgate/sidecar/stripesync/stripetest"
	"github.com/tollgate/tollgate/sidecar/upgrade"
)

const demoUsage = `usage: tollgate demo [--database-url URL]

Plays tollgate's whole loop and checks every step: a free customer uses the API until blocked (the
402 carries a signed upgrade link), the limit event wakes the sidecar, which sends the upgrade
prompt (printed: the log email provider, or SMTP when SMTP_URL is set) with the customer's link;
the customer clicks it and lands on Stripe Checkout (a local fake Stripe), pays, and the signed
checkout.session.completed webhook moves them to pro; the next call is allowed, the conversion is
attributed to the click, and the funnel is printed. Exits 0 only when every step checked out; stops
everything it started.

Without --database-url it starts a throwaway PostgreSQL (Debian's postgresql package). With it, it
creates a fresh database on that server (the role needs CREATEDB) and drops it at the end.
`

func init() {
	register(command{name: "demo", summary: "play the whole freemium loop against a throwaway PostgreSQL, checking each step", run: runDemo})
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("demo", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	dbURL := flags.String("database-url", "", "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, demoUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tollgate demo: %v\n\n%s", err, demoUsage)
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate demo: unexpected argument %q\n\n%s", flags.Arg(0), demoUsage)
		return 2
	}
	d := &demo{out: stdout, env: config.EnvFrom(os.Getenv)}
	err := d.run(ctx, *dbURL)
	if err != nil {
		var me *schema.MigrationError
		if errors.As(err, &me) {
			printMigrateError(stderr, err)
		} else {
			fmt.Fprintf(stderr, "tollgate demo: %v\n", err)
		}
		fmt.Fprintln(stdout, "\nThe demo did NOT check out.")
		return 1
	}
	fmt.Fprintln(stdout, "\nEvery step checked out.")
	return 0
}

// demo holds what one run started, so that everything is stopped however it ends.
type demo struct {
	out     io.Writer
	env     config.Env
	cleanup []func()
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n== "+format+"\n", args...)
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "   "+format+"\n", args...)
}

// check fails the demo unless ok.
func check(ok bool, format string, args ...any) error {
	if !ok {
		return fmt.Errorf("check failed: "+format, args...)
	}
	return nil
}

func (d *demo) run(ctx context.Context, serverURL string) (err error) {
	defer func() {
		for i := len(d.cleanup) - 1; i >= 0; i-- {
			d.cleanup[i]()
		}
	}()
	start := time.Now()

	// 1. PostgreSQL
	dbURL, err := d.database(ctx, serverURL)
	if err != nil {
		return err
	}
	owner, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	d.cleanup = append(d.cleanup, owner.Close)

	d.step("tollgate migrate")
	conn, err := owner.Acquire(ctx)
	if err != nil {
		return err
	}
	res, err := schema.Migrate(ctx, conn.Conn(), schema.Latest, io.Discard)
	conn.Release()
	if err != nil {
		return err
	}
	d.say("schema at version %d: %d migrations applied", res.To, len(res.Applied))

	d.step("tollgate apply examples/tollgate.yaml")
	cfg, err := config.Parse("examples/tollgate.yaml", examples.TollgateYAML)
	if err != nil {
		return err
	}
	cfg.Email.RatePerSecond = 0 // no pacing in a one-email demo
	cfg.Sidecar.PollInterval = 500 * time.Millisecond
	if d.env.SMTPURL != "" {
		cfg.Email.Provider = "smtp"
	}
	var applied bytes.Buffer
	if _, err := apply.Apply(ctx, owner, cfg, apply.Options{}, &applied); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(applied.String()), "\n") {
		d.say("%s", line)
	}

	// 2. The sidecar, with a fake Stripe, the email provider and upgrade links.
	d.step("starting the sidecar (tollgate serve) with a local fake Stripe")
	fake, stopFake := stripetest.StartFake()
	d.cleanup = append(d.cleanup, stopFake)
	const webhookSecret = "whsec_tollgatedemo"
	sidecarURL, emails, err := d.sidecar(ctx, cfg, owner, dbURL, fake.URL, webhookSecret)
	if err != nil {
		return err
	}
	d.say("sidecar at %s, fake Stripe at %s, emails go to %s", sidecarURL, fake.URL, cfg.Email.Provider)
	d.say("upgrade links on: %s/upgrade/<token>, signed with a TOLLGATE_LINK_SECRET of this run", sidecarURL)

	// 3. A free customer uses the API until blocked.
	const customer, feature = "alice", "api_calls"
	app, err := owner.Acquire(ctx)
	if err != nil {
		return err
	}
	defer app.Release()
	// What the Django app's database user can do: only tollgate_app's functions.
	if _, err := app.Exec(ctx, "SET ROLE tollgate_app"); err != nil {
		return err
	}
	defer app.Exec(context.WithoutCancel(ctx), "RESET ROLE") //nolint:errcheck // the connection is closed next

	d.step("a free customer signs up and calls the API")
	if _, err := app.Exec(ctx, `SELECT tollgate.set_customer($1, $2)`, customer, "alice@example.test"); err != nil {
		return err
	}
	var v struct {
		allowed         bool
		plan            string
		used            int64
		quota           *int64
		remaining       *int64
		message         *string
		resetsAt        *time.Time
		calls, allowedN int
	}
	consume := func() error {
		v.calls++
		return app.QueryRow(ctx, `SELECT allowed, plan, used, quota, remaining, message, resets_at FROM tollgate.consume($1, $2)`,
			customer, feature).Scan(&v.allowed, &v.plan, &v.used, &v.quota, &v.remaining, &v.message, &v.resetsAt)
	}
	for {
		if err := consume(); err != nil {
			return err
		}
		if !v.allowed {
			break
		}
		v.allowedN++
		if v.calls <= 3 || v.calls%20 == 0 || (v.remaining != nil && *v.remaining < 3) {
			d.say("call %3d: allowed, %d of %d used, %d remaining", v.calls, v.used, *v.quota, *v.remaining)
		}
		if err := check(v.calls <= 1000, "the free quota never ran out"); err != nil {
			return err
		}
	}
	d.say("call %3d: BLOCKED -> the app answers HTTP 402: %q", v.calls, deref(v.message))
	if err := check(v.quota != nil && v.used == *v.quota && v.allowedN == int(*v.quota) && v.plan == "free",
		"blocked after exactly the free quota (used %d, allowed %d)", v.used, v.allowedN); err != nil {
		return err
	}
	var appLink *string
	if err := app.QueryRow(ctx, `SELECT tollgate.upgrade_link($1, $2)`, customer, feature).Scan(&appLink); err != nil {
		return err
	}
	if err := check(appLink != nil && strings.HasPrefix(*appLink, sidecarURL+"/upgrade/"), "the 402 carries a signed upgrade link"); err != nil {
		return err
	}
	var variant string
	if err := owner.QueryRow(ctx, `SELECT variant FROM tollgate.events WHERE customer = $1 AND kind = 'limit_reached'`, customer).
		Scan(&variant); err != nil {
		return err
	}
	d.say("the 402's upgrade_url (tollgate.upgrade_link, minted in SQL): %s", shorten(*appLink))
	d.say("alice is in the prompt experiment's %q variant: it chose the message above, which her email repeats", variant)

	// 4. The limit event wakes the sidecar, which sends the upgrade prompt.
	d.step("the limit event wakes the sidecar's listener; it sends the upgrade prompt")
	var emailID int64
	var sentAt time.Time
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := owner.QueryRow(ctx, `SELECT id, sent_at FROM tollgate.emails WHERE customer = $1 AND status = 'sent'`, customer).
			Scan(&emailID, &sentAt)
		if err == nil {
			break
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if time.Now().After(deadline) {
			return check(false, "no upgrade email was sent within 20s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if printed := emails.String(); printed != "" {
		// the text part; the HTML part says the same
		text, _, _ := strings.Cut(printed, "--- html")
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			d.say("| %s", line)
		}
	} else {
		d.say("email %d sent through %s", emailID, cfg.Email.Provider)
	}

	// 5. The customer clicks the email's link: the sidecar records the click and opens Stripe Checkout.
	d.step("alice clicks the email's upgrade link")
	link := upgradeLinkRE.FindString(emails.String())
	if err := check(link != "" && strings.HasPrefix(link, sidecarURL+"/upgrade/"), "the email carries a signed upgrade link"); err != nil {
		return err
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(link)
	if err != nil {
		return err
	}
	resp.Body.Close()
	checkout := resp.Header.Get("Location")
	d.say("GET %s -> %s, Location: %s", shorten(strings.TrimPrefix(link, sidecarURL)), resp.Status, checkout)
	sessions := fake.CreatedSessions()
	if err := check(resp.StatusCode == http.StatusSeeOther && len(sessions) == 1 && checkout == sessions[0].URL,
		"the link opened a Stripe Checkout Session"); err != nil {
		return err
	}
	cs := sessions[0]
	d.say("Checkout Session %s: subscription to %s for client_reference_id %s (%s prefilled), metadata %v",
		cs.ID, cs.Lines[0].Price, cs.ClientReferenceID, cs.CustomerEmail, cs.Metadata)
	if err := check(cs.ClientReferenceID == customer && cs.Lines[0].Price == "price_pro_monthly" &&
		cs.Metadata["tollgate_email"] == strconv.FormatInt(emailID, 10) && cs.Metadata["tollgate_variant"] == variant,
		"the session names alice, pro's price, the email and the variant"); err != nil {
		return err
	}

	// 6. The customer pays: Stripe sends a signed webhook; the sidecar re-fetches and upgrades them.
	d.step("alice pays on Stripe Checkout: Stripe sends a signed checkout.session.completed")
	done := fake.CompleteCheckoutSession(cs.ID, "cus_DemoAlice", "sub_DemoAlice", "prod_pro")
	now := time.Now()
	body := stripetest.Event("evt_demo_1", "checkout.session.completed", "2023-10-16", now,
		map[string]any{"id": done.ID, "object": "checkout.session"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sidecarURL+"/webhooks/stripe", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Stripe-Signature", stripetest.Sign(body, webhookSecret, now))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	d.say("POST /webhooks/stripe checkout.session.completed -> %s", resp.Status)
	if err := check(resp.StatusCode == http.StatusOK, "the webhook was answered %s", resp.Status); err != nil {
		return err
	}

	// 7. The next call is allowed.
	d.step("the next API call")
	if err := consume(); err != nil {
		return err
	}
	d.say("call %3d: allowed=%v on plan %s (quota: unlimited)", v.calls, v.allowed, v.plan)
	if err := check(v.allowed && v.plan == "pro" && v.quota == nil, "alice is on pro and allowed"); err != nil {
		return err
	}

	// 8. The conversion, attributed to the click.
	d.step("the conversion is attributed to the click of the upgrade prompt")
	var fromPlan, toPlan string
	var attributed, click *int64
	var convVariant *string
	var convertedAt time.Time
	if err := owner.QueryRow(ctx, `SELECT from_plan, to_plan, email_id, click_id, variant, converted_at FROM tollgate.conversions
		WHERE customer = $1`, customer).Scan(&fromPlan, &toPlan, &attributed, &click, &convVariant, &convertedAt); err != nil {
		return fmt.Errorf("reading the conversion: %w", err)
	}
	d.say("%s -> %s at %s, attributed to the click %d of email %d, variant %q (sent %s before)", fromPlan, toPlan,
		convertedAt.Format(time.TimeOnly), deref(click), deref(attributed), deref(convVariant),
		convertedAt.Sub(sentAt).Round(time.Millisecond))
	if err := check(attributed != nil && *attributed == emailID && click != nil && deref(convVariant) == variant,
		"the conversion is attributed to the click of email %d", emailID); err != nil {
		return err
	}

	// 9. The funnel.
	d.step("tollgate report: the funnel")
	var hit, prompted, clicked, converted int64
	err = owner.QueryRow(ctx, `SELECT hit_limit, prompted, clicked, converted FROM tollgate.funnel(now() - interval '1 day', now() + interval '1 minute')
	                           WHERE feature = $1`, feature).Scan(&hit, &prompted, &clicked, &converted)
	if err != nil {
		return fmt.Errorf("reading the funnel: %w", err)
	}
	d.say("%s: %d hit the limit, %d prompted, %d clicked, %d converted", feature, hit, prompted, clicked, converted)
	if err := check(hit == 1 && prompted == 1 && clicked == 1 && converted == 1,
		"the funnel counts 1 hit, 1 prompted, 1 clicked, 1 converted"); err != nil {
		return err
	}
	d.step("done in %s; stopping the sidecar and PostgreSQL", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// database starts a throwaway server, or creates a fresh database on serverURL; either is removed at the end.
func (d *demo) database(ctx context.Context, serverURL string) (string, error) {
	if serverURL == "" {
		d.step("starting a throwaway PostgreSQL")
		srv, err := pgserver.Start(ctx, pgserver.Options{})
		if err != nil {
			return "", err
		}
		d.cleanup = append(d.cleanup, func() {
			if err := srv.Stop(); err != nil {
				fmt.Fprintf(d.out, "   stopping PostgreSQL: %v\n", err)
				return
			}
			d.say("stopped PostgreSQL and removed its data directory %s", srv.DataDir())
		})
		d.say("PostgreSQL from %s, data in %s", srv.BinDir(), srv.DataDir())
		return srv.URL("postgres"), nil
	}
	d.step("creating a scratch database")
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("tollgate_demo_%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		admin.Close(ctx)
		return "", err
	}
	d.cleanup = append(d.cleanup, func() {
		defer admin.Close(context.Background())
		if _, err := admin.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(d.out, "   dropping %s: %v\n", name, err)
			return
		}
		d.say("dropped database %s", name)
	})
	d.say("database %s", name)
	return withDatabase(serverURL, name)
}

// sidecar runs what `tollgate serve` runs, in this process: Stripe sync against stripeURL, the mailer, whose
// log provider prints into the returned buffer, and upgrade links (public at the sidecar's own address, signed
// with a secret of this run). It stops at the end of the demo.
func (d *demo) sidecar(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, dbURL, stripeURL, webhookSecret string) (string, *syncBuffer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	url := "http://" + ln.Addr().String()
	cfg.UpgradeLinks.PublicURL = url // links lead to this sidecar
	var secret [24]byte
	rand.Read(secret[:])
	env := d.env
	env.DatabaseURL = dbURL
	env.StripeSecretKey = stripetest.Key
	env.StripeAPIBase = stripeURL
	env.StripeWebhookSecret = webhookSecret
	env.LinkSecret, env.LinkSecretPrevious = hex.EncodeToString(secret[:]), ""
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	reg := metrics.NewRegistry()
	srv := sidecar.New(cfg, pool, log, reg)
	syncer, err := stripesync.FromConfig(cfg, env, pool, log, reg)
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	srv.Handle("POST /webhooks/stripe", syncer)
	signer, err := upgrade.SignerFromConfig(cfg, env)
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	srv.Add(upgrade.NewConfigurer(pool, signer, url, cfg.UpgradeLinks.Expires, log))
	linkOpts := upgrade.FromConfig(cfg)
	linkOpts.DB, linkOpts.Signer, linkOpts.Stripe, linkOpts.Logger, linkOpts.Metrics = pool, signer, syncer.Client(), log, reg
	links, err := upgrade.NewHandler(linkOpts)
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	srv.Handle("GET /upgrade/{token}", links)
	emails := &syncBuffer{}
	opts, err := mailer.OptionsFromConfig(pool, cfg, env, reg, log)
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	if cfg.Email.Provider == "log" {
		opts.Provider = mailer.NewLogProvider(emails) // into the narration, not stdout
	}
	m, err := mailer.New(opts)
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	srv.Add(m)

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(runCtx, ln) }()
	d.cleanup = append(d.cleanup, func() {
		stop()
		if err := <-done; err != nil {
			fmt.Fprintf(d.out, "   sidecar: %v\n", err)
		}
	})
	// wait until it is ready: database, migrations, listener, the link key
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, emails, nil
			}
		}
		if time.Now().After(deadline) {
			return "", nil, errors.New("the sidecar did not become ready within 20s")
		}
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case err := <-done:
			return "", nil, fmt.Errorf("the sidecar stopped: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// upgradeLinkRE finds an upgrade link in an email's text.
var upgradeLinkRE = regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+/upgrade/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

// shorten cuts a long URL for the narration.
func shorten(s string) string {
	if len(s) > 72 {
		return s[:60] + "..." + s[len(s)-8:]
	}
	return s
}

// syncBuffer is a bytes.Buffer safe for the mailer's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
