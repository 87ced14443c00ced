package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

const customerUsage = `usage: tollgate customer [--format table|json] [--database-url URL] CUSTOMER

The support view of one customer: plan and Stripe subscriptions; each feature's usage, quota, override,
grants and reset time; the last events, upgrade emails and plan changes. It reads
tollgate.customer_summary, so the role needs tollgate_admin (or is tollgate's owner).

  --format FORMAT     table (default) or json (the whole summary)
  --database-url URL  a member of tollgate_admin (or the owner); default: $DATABASE_URL
`

func init() {
	register(command{name: "customer", summary: "show one customer as support sees them: plan, usage, overrides, grants, events, emails", run: runCustomer})
}

func runCustomer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return customerCmd(ctx, args, stdout, stderr, os.Getenv)
}

// customerCmd is runCustomer with its environment passed in (tests).
func customerCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	flags := flag.NewFlagSet("customer", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	format := flags.String("format", "table", "")
	dbURL := flags.String("database-url", "", "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, customerUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tollgate customer: %v\n\n%s", err, customerUsage)
		return 2
	}
	if flags.NArg() != 1 {
		fmt.Fprintf(stderr, "tollgate customer: name one customer\n\n%s", customerUsage)
		return 2
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "tollgate customer: --format is table or json, not %q\n", *format)
		return 2
	}
	conn, cfg, code := connectFlag(ctx, "customer", *dbURL, getenv, stderr)
	if conn == nil {
		return code
	}
	defer conn.Close(context.Background())
	var raw []byte
	if err := conn.QueryRow(ctx, `SELECT tollgate.customer_summary($1)`, flags.Arg(0)).Scan(&raw); err != nil {
		fmt.Fprintf(stderr, "tollgate customer: %s\n", scrub(err, cfg.ConnString()))
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "42501":
			fmt.Fprintf(stderr, "tollgate customer: the role %q may not read customers: use a member of tollgate_admin or "+
				"tollgate's owner\n", cfg.User)
			return 1
		case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "TG4"):
			return 2
		}
		return 1
	}
	if *format == "json" {
		var out bytes.Buffer
		if err := json.Indent(&out, raw, "", "  "); err != nil {
			fmt.Fprintf(stderr, "tollgate customer: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, out.String())
		return 0
	}
	var s customerSummary
	if err := json.Unmarshal(raw, &s); err != nil {
		fmt.Fprintf(stderr, "tollgate customer: %v\n", err)
		return 1
	}
	writeCustomer(stdout, &s)
	return 0
}

// customerSummary is what tollgate.customer_summary returns.
type customerSummary struct {
	Customer       string     `json:"customer"`
	Known          bool       `json:"known"`
	Email          *string    `json:"email"`
	StripeCustomer *string    `json:"stripe_customer"`
	SignedUp       *time.Time `json:"signed_up"`
	Plan           string     `json:"plan"`
	PeriodEnd      *time.Time `json:"period_end"`
	Subscriptions  []struct {
		ID        string     `json:"stripe_subscription"`
		Status    string     `json:"status"`
		Plan      *string    `json:"plan"`
		PeriodEnd *time.Time `json:"current_period_end"`
		Cancel    bool       `json:"cancel_at_period_end"`
	} `json:"subscriptions"`
	Features []struct {
		Feature  string     `json:"feature"`
		Allowed  bool       `json:"allowed"`
		Used     int64      `json:"used"`
		Quota    *int64     `json:"quota"`
		Granted  *int64     `json:"granted"`
		ResetsAt *time.Time `json:"resets_at"`
		Override *struct {
			Quota  *int64     `json:"quota"`
			Until  *time.Time `json:"until"`
			Reason *string    `json:"reason"`
		} `json:"override"`
		Grants []struct {
			ID        int64      `json:"id"`
			Amount    int64      `json:"amount"`
			Spent     int64      `json:"spent"`
			ExpiresAt *time.Time `json:"expires_at"`
			Reason    *string    `json:"reason"`
			Expired   *bool      `json:"expired"`
		} `json:"grants"`
	} `json:"features"`
	Events []struct {
		Kind      string    `json:"kind"`
		Feature   string    `json:"feature"`
		Threshold int       `json:"threshold"`
		Used      int64     `json:"used"`
		Quota     *int64    `json:"quota"`
		At        time.Time `json:"at"`
	} `json:"events"`
	Emails []struct {
		ID       int64      `json:"id"`
		Feature  string     `json:"feature"`
		Status   string     `json:"status"`
		Attempts int        `json:"attempts"`
		To       *string    `json:"to"`
		HandedOf *time.Time `json:"handed_off_at"`
	} `json:"emails"`
	PlanChanges []struct {
		Kind    string    `json:"kind"`
		From    string    `json:"from"`
		To      string    `json:"to"`
		Feature *string   `json:"feature"`
		At      time.Time `json:"at"`
	} `json:"plan_changes"`
}

func writeCustomer(w io.Writer, s *customerSummary) {
	str := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	num := func(p *int64, none string) string {
		if p == nil {
			return none
		}
		return fmt.Sprint(*p)
	}
	when := func(t *time.Time, none string) string {
		if t == nil {
			return none
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}
	fmt.Fprintf(w, "Customer %s\n", s.Customer)
	if !s.Known {
		fmt.Fprintln(w, "  not seen yet: on the default plan")
	}
	fmt.Fprintf(w, "  plan %s, email %s, Stripe %s, signed up %s\n", s.Plan, str(s.Email), str(s.StripeCustomer), when(s.SignedUp, "-"))
	if len(s.Subscriptions) > 0 {
		fmt.Fprintln(w, "\nSubscriptions:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, sub := range s.Subscriptions {
			cancel := ""
			if sub.Cancel {
				cancel = "cancels at period end"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\tuntil %s\t%s\n", sub.ID, sub.Status, str(sub.Plan), when(sub.PeriodEnd, "-"), cancel)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nFeatures:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  feature\tused\tquota\tgranted left\tresets\toverride\t")
	for _, f := range s.Features {
		override := "-"
		if f.Override != nil {
			override = num(f.Override.Quota, "unlimited") + " until " + when(f.Override.Until, "cleared")
			if f.Override.Reason != nil {
				override += " (" + *f.Override.Reason + ")"
			}
		}
		state := ""
		if !f.Allowed {
			state = " BLOCKED"
		}
		fmt.Fprintf(tw, "  %s%s\t%d\t%s\t%s\t%s\t%s\t\n", f.Feature, state, f.Used, num(f.Quota, "unlimited"),
			num(f.Granted, "-"), when(f.ResetsAt, "never"), override)
	}
	tw.Flush()
	for _, f := range s.Features {
		for _, g := range f.Grants {
			expired := ""
			if g.Expired != nil && *g.Expired {
				expired = ", expired"
			}
			fmt.Fprintf(w, "  grant #%d of %s: %d spent of %d, expires %s%s, %s\n", g.ID, f.Feature, g.Spent, g.Amount,
				when(g.ExpiresAt, "never"), expired, str(g.Reason))
		}
	}
	if len(s.Events) > 0 {
		fmt.Fprintln(w, "\nLast events:")
		for _, e := range s.Events {
			fmt.Fprintf(w, "  %s  %s %s at %d%% (%d of %s)\n", when(&e.At, ""), e.Feature, e.Kind, e.Threshold, e.Used, num(e.Quota, "unlimited"))
		}
	}
	if len(s.Emails) > 0 {
		fmt.Fprintln(w, "\nLast upgrade emails:")
		for _, m := range s.Emails {
			fmt.Fprintf(w, "  #%d  %s  %s after %d attempt(s), to %s, handed off %s\n", m.ID, m.Feature, m.Status, m.Attempts,
				str(m.To), when(m.HandedOf, "-"))
		}
	}
	if len(s.PlanChanges) > 0 {
		fmt.Fprintln(w, "\nPlan changes:")
		for _, c := range s.PlanChanges {
			prompt := ""
			if c.Feature != nil {
				prompt = " after the " + *c.Feature + " prompt"
			}
			fmt.Fprintf(w, "  %s  %s %s -> %s%s\n", when(&c.At, ""), c.Kind, c.From, c.To, prompt)
		}
	}
}
