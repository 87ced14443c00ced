package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate/tollgate/internal/funnel"
)

const reportUsage = `usage: tollgate report [--since WHEN] [--until WHEN] [--format table|json|csv] [--database-url URL]

Prints the conversion funnel of the free customers whose limit events happened in the range, per feature and
in total: how many hit a threshold, hit the limit, were prompted (an upgrade email, or a click of an upgrade
link), clicked an upgrade link, and converted to a paid plan after a prompt (whenever that was) or without one
(in the range); the conversion rate after a prompt; the median and p90 time from prompt to conversion. Then
each prompt experiment (variants: customers, prompted, clicked, converted, the rate with its 95% interval and,
against control, the difference and its p-value; the winner when it is significant), the trials that ended
in the range, and what needs attention: upgrade prompts given up (dead emails), Stripe subscriptions that give
nobody a plan, top-up purchases waiting for their customer. docs/conversions.md explains each number.

  --since WHEN        start of the range: a duration back from now (30d, 12h), a date (2025-01-01, UTC) or
                      an RFC 3339 time; default 30d
  --until WHEN        end of the range, excluded (a date means the end of that day); default now
  --format FORMAT     table (default); json (everything); csv (the funnel; the rest goes to stderr)
  --database-url URL  a member of tollgate_sidecar (or the owner); default: $DATABASE_URL
`

func init() {
	register(command{name: "report", summary: "print the conversion funnel and what needs attention (dead emails, unmapped subscriptions)", run: runReport})
}

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return reportCmd(ctx, args, stdout, stderr, os.Getenv, time.Now)
}

// reportCmd is runReport with its environment and clock passed in (tests).
func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, now func() time.Time) int {
	flags := flag.NewFlagSet("report", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	since := flags.String("since", funnel.DefaultSince, "")
	until := flags.String("until", "", "")
	format := flags.String("format", "table", "")
	dbURL := flags.String("database-url", "", "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, reportUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tollgate report: %v\n\n%s", err, reportUsage)
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate report: unexpected argument %q\n\n%s", flags.Arg(0), reportUsage)
		return 2
	}
	if *format != "table" && *format != "json" && *format != "csv" {
		fmt.Fprintf(stderr, "tollgate report: --format is table, json or csv, not %q\n", *format)
		return 2
	}
	from, to, err := funnel.ParseRange(*since, *until, now().UTC())
	if err != nil {
		fmt.Fprintf(stderr, "tollgate report: %v\n", err)
		return 2
	}
	conn, cfg, code := connectFlag(ctx, "report", *dbURL, getenv, stderr)
	if conn == nil {
		return code
	}
	defer conn.Close(context.Background())

	rows, err := funnel.Query(ctx, conn, from, to)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate report: the funnel: %s\n", scrub(err, cfg.ConnString()))
		if hint := reportRoleHint(err, cfg.User); hint != "" {
			fmt.Fprintln(stderr, hint)
		}
		return 1
	}
	attention, err := funnel.QueryAttention(ctx, conn)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate report: what needs attention: %s\n", scrub(err, cfg.ConnString()))
		return 1
	}
	experiments, err := funnel.Experiments(ctx, conn, from, to, funnel.Step(from, to))
	if err != nil {
		fmt.Fprintf(stderr, "tollgate report: the prompt experiments: %s\n", scrub(err, *dbURL))
		return 1
	}
	trials, err := funnel.QueryTrials(ctx, conn, from, to)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate report: the trial funnel: %s\n", scrub(err, *dbURL))
		return 1
	}
	r := reportData{since: from, until: to, rows: rows, attention: attention, experiments: experiments, trials: trials}
	switch *format {
	case "json":
		err = reportJSON(stdout, r)
	case "csv":
		err = reportCSV(stdout, rows)
		if err == nil {
			writeExperiments(stderr, experiments)
			writeAttention(stderr, attention, false)
		}
	default:
		err = reportTable(stdout, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tollgate report: %v\n", err)
		return 1
	}
	return 0
}

// reportRoleHint explains a permission error: report reads what the sidecar reads, so it needs a member of
// tollgate_sidecar (or the owner), not the app's role (a member of tollgate_app only).
func reportRoleHint(err error, user string) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		return ""
	}
	return fmt.Sprintf("tollgate report: the role %q may not read the funnel: use a member of tollgate_sidecar "+
		"(the sidecar's database URL; tollgate dev prints it for tollgate report) or tollgate's owner, "+
		"not the app's role", user)
}

// reportData is everything a report shows.
type reportData struct {
	since, until time.Time
	rows         []funnel.Row
	attention    funnel.Attention
	experiments  []funnel.Experiment
	trials       funnel.Trials
}

func reportJSON(w io.Writer, r reportData) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	exps := r.experiments
	if exps == nil {
		exps = []funnel.Experiment{}
	}
	return enc.Encode(struct {
		Since       time.Time           `json:"since"`
		Until       time.Time           `json:"until"`
		Funnel      []funnel.Row        `json:"funnel"`
		Experiments []funnel.Experiment `json:"experiments"`
		Trials      funnel.Trials       `json:"trials"`
		DeadEmails  int64               `json:"dead_emails"`
		Attention   funnel.Attention    `json:"attention"`
	}{r.since, r.until, r.rows, exps, r.trials, r.attention.DeadEmails(), r.attention})
}

var csvHeader = []string{"feature", "hit_threshold", "hit_limit", "prompted", "clicked", "converted", "attributed",
	"organic", "conversion_rate", "median_seconds", "p90_seconds"}

// reportCSV writes the funnel, the total row last with feature (total); empty cells are NULLs.
func reportCSV(w io.Writer, rows []funnel.Row) error {
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	num := func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	}
	for _, r := range rows {
		cw.Write([]string{r.Name(), strconv.FormatInt(r.HitThreshold, 10), strconv.FormatInt(r.HitLimit, 10),
			strconv.FormatInt(r.Prompted, 10), strconv.FormatInt(r.Clicked, 10), strconv.FormatInt(r.Converted, 10),
			strconv.FormatInt(r.Attributed, 10), strconv.FormatInt(r.Organic, 10), num(r.ConversionRate),
			num(r.MedianSeconds), num(r.P90Seconds)})
	}
	cw.Flush()
	return cw.Error()
}

func reportTable(w io.Writer, d reportData) error {
	const layout = "2006-01-02 15:04 UTC"
	fmt.Fprintf(w, "Conversion funnel of free customers with limit events from %s to %s\n\n",
		d.since.UTC().Format(layout), d.until.UTC().Format(layout))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "feature\thit a threshold\thit the limit\tprompted\tclicked\tconverted\tafter a prompt\twithout\trate\tmedian\tp90\t")
	for _, r := range d.rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", r.Name(), r.HitThreshold, r.HitLimit, r.Prompted,
			r.Clicked, r.Converted, r.Attributed, r.Organic, funnel.FormatRate(r.ConversionRate),
			funnel.FormatSeconds(r.MedianSeconds), funnel.FormatSeconds(r.P90Seconds))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if writeExperiments(w, d.experiments) {
		fmt.Fprintln(w)
	}
	if t := d.trials; t.Trials > 0 {
		fmt.Fprintf(w, "Trials that ended in the range: %d, %d converted to paid (%s)", t.Trials, t.Converted, funnel.FormatRate(t.ConversionRate))
		if t.Prompted > 0 {
			fmt.Fprintf(w, "; %d were sent the trial prompt, %d of them converted after it (%s)", t.Prompted, t.Attributed, funnel.FormatRate(t.PromptedRate))
		}
		fmt.Fprint(w, "\n\n")
	}
	writeAttention(w, d.attention, true)
	return nil
}

// writeExperiments prints each prompt experiment as a table, and says whether there were any.
func writeExperiments(w io.Writer, exps []funnel.Experiment) bool {
	for _, e := range exps {
		fmt.Fprintf(w, "Prompt experiment on %s (rate: converted / hit the limit; against control: two-proportion test)\n", e.Feature)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  variant\tweight\thit the limit\tprompted\tclicked\tconverted\trate\t95% interval\tvs control\tp-value\t")
		for _, v := range e.Variants {
			weight := "removed"
			if v.Weight != nil {
				weight = strconv.Itoa(int(*v.Weight))
			}
			p := ""
			if v.Variant != "control" {
				p = funnel.FormatP(v.PValue)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", v.Variant, weight, v.HitLimit, v.Prompted,
				v.Clicked, v.Converted, funnel.FormatRate(v.Rate), funnel.FormatInterval(v.RateLow, v.RateHigh),
				funnel.FormatDifference(v.Difference), p)
		}
		tw.Flush()
		if e.Winner != "" {
			fmt.Fprintf(w, "  Winner: %s (significant at p < %.2f)\n", e.Winner, funnel.Significance)
		} else {
			fmt.Fprintln(w, "  No winner yet: no difference from control is significant.")
		}
	}
	return len(exps) > 0
}

// writeAttention lists what needs an operator: dead emails and subscriptions that give nobody a plan. all also
// says so when nothing does.
func writeAttention(w io.Writer, a funnel.Attention, all bool) {
	dead, unmapped, waiting := a.DeadEmails(), a.Unmapped, a.WaitingTopups
	if dead == 0 && len(unmapped) == 0 && len(waiting) == 0 {
		if all {
			fmt.Fprintln(w, "Nothing needs attention: no dead emails, every live subscription gives a customer a plan.")
		}
		return
	}
	fmt.Fprintln(w, "Needs attention:")
	if dead > 0 {
		fmt.Fprintf(w, "  %d upgrade prompt%s given up (emails with status dead; last_error says why)\n", dead, plural(dead))
	}
	if len(unmapped) > 0 {
		fmt.Fprintf(w, "  %d Stripe subscription%s giving nobody a plan:\n", len(unmapped), plural(int64(len(unmapped))))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, s := range unmapped {
			prices := append(append([]string{}, s.PriceIDs...), s.ProductIDs...)
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\titems: %s\n", s.StripeSubscription, s.StripeCustomer, s.Status, s.Problem,
				strings.Join(prices, ", "))
		}
		tw.Flush()
	}
	if len(waiting) > 0 {
		fmt.Fprintf(w, "  %d top-up purchase%s waiting for their customer (link the Stripe customer; docs/stripe.md):\n",
			len(waiting), plural(int64(len(waiting))))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, p := range waiting {
			customer := "no Stripe customer"
			if p.StripeCustomer != nil {
				customer = *p.StripeCustomer
			}
			items := make([]string, len(p.PriceIDs))
			for i, id := range p.PriceIDs {
				items[i] = fmt.Sprintf("%s x%d", id, p.Quantities[i])
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\titems: %s\n", p.StripeObject, customer, p.ReceivedAt.UTC().Format("2006-01-02 15:04 UTC"),
				strings.Join(items, ", "))
		}
		tw.Flush()
	}
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
