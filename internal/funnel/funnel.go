// Package funnel reads the conversion funnel, the prompt experiments, the trial funnel and what needs attention
// from the database, for `tollgate report` and the funnel page of `tollgate serve`. The numbers come from
// tollgate.funnel, tollgate.experiment_results and experiment_timeline, tollgate.trial_funnel,
// tollgate.outbox_counts, tollgate.unmapped_subscriptions and tollgate.waiting_topups (docs/conversions.md); this
// package only calls them, decides a winner, and translates their errors.
package funnel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the functions here need of a connection: *pgx.Conn, *pgxpool.Pool and pgx.Tx have it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ErrBadRange is returned (wrapped) for a range the database refuses (SQLSTATE TG422) or that cannot be parsed.
var ErrBadRange = errors.New("funnel: bad time range")

// Row is one row of tollgate.funnel: a feature's customers at each stage, or the total (Feature "").
type Row struct {
	Feature      string `json:"feature"` // "" in the total row
	Total        bool   `json:"total"`
	HitThreshold int64  `json:"hit_threshold"`
	HitLimit     int64  `json:"hit_limit"`
	Prompted     int64  `json:"prompted"`
	Clicked      int64  `json:"clicked"`
	Converted    int64  `json:"converted"`
	Attributed   int64  `json:"attributed"`
	Organic      int64  `json:"organic"`
	// ConversionRate is Attributed / Prompted; nil when nobody was prompted.
	ConversionRate *float64 `json:"conversion_rate"`
	// MedianSeconds and P90Seconds are from prompt to attributed conversion; nil without one.
	MedianSeconds *float64 `json:"median_seconds"`
	P90Seconds    *float64 `json:"p90_seconds"`
}

// TotalName is the Name of the total row: not a feature name, which starts with a letter.
const TotalName = "(total)"

// Name is the feature, or TotalName.
func (r Row) Name() string {
	if r.Total {
		return TotalName
	}
	return r.Feature
}

const funnelSQL = `SELECT feature, hit_threshold, hit_limit, prompted, clicked, converted, attributed, organic,
       conversion_rate, median_seconds, p90_seconds
  FROM tollgate.funnel($1, $2)`

// Query returns the funnel of [since, until): one row per feature that had events in the range, then the total
// row (always there).
func Query(ctx context.Context, q Querier, since, until time.Time) ([]Row, error) {
	rows, err := q.Query(ctx, funnelSQL, since, until)
	if err != nil {
		return nil, translate(err)
	}
	var out []Row
	for rows.Next() {
		var r Row
		var feature *string
		if err := rows.Scan(&feature, &r.HitThreshold, &r.HitLimit, &r.Prompted, &r.Clicked, &r.Converted, &r.Attributed,
			&r.Organic, &r.ConversionRate, &r.MedianSeconds, &r.P90Seconds); err != nil {
			rows.Close()
			return nil, err
		}
		if feature == nil {
			r.Total = true
		} else {
			r.Feature = *feature
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}

// Significance is the p-value below which a variant's difference from control counts as significant.
const Significance = 0.05

// Variant is one row of tollgate.experiment_results.
type Variant struct {
	Variant   string `json:"variant"`
	Weight    *int32 `json:"weight"` // nil: no longer defined
	HitLimit  int64  `json:"hit_limit"`
	Prompted  int64  `json:"prompted"`
	Clicked   int64  `json:"clicked"`
	Converted int64  `json:"converted"`
	// Rate is Converted / HitLimit, RateLow and RateHigh its 95% Wilson interval; nil without customers.
	Rate     *float64 `json:"conversion_rate"`
	RateLow  *float64 `json:"rate_low"`
	RateHigh *float64 `json:"rate_high"`
	// Difference is Rate minus control's; PValue its two-proportion test's; nil for control.
	Difference *float64 `json:"difference"`
	PValue     *float64 `json:"p_value"`
	// Significant: PValue < Significance.
	Significant bool `json:"significant"`
	// Timeline is the conversion rate as it stood at the end of each bucket (for the chart), oldest first.
	Timeline []Point `json:"timeline,omitempty"`
}

// Point is a variant's cumulative conversion rate at a time: customers who hit the limit so far, how many of
// them converted so far.
type Point struct {
	At        time.Time `json:"at"`
	HitLimit  int64     `json:"hit_limit"`
	Converted int64     `json:"converted"`
}

// Rate is Converted / HitLimit; 0 without customers.
func (p Point) Rate() float64 {
	if p.HitLimit == 0 {
		return 0
	}
	return float64(p.Converted) / float64(p.HitLimit)
}

// Experiment is a feature's prompt experiment over a range.
type Experiment struct {
	Feature  string    `json:"feature"`
	Variants []Variant `json:"variants"` // control first
	// Winner is the variant whose rate is significantly above every other's compared with control (control
	// when it is significantly above every other); "" when no difference is significant.
	Winner string `json:"winner"`
	// Step is the timeline's bucket.
	Step time.Duration `json:"step"`
}

// Experiments returns every feature's prompt experiment (tollgate.experiments) over [since, until), with the
// timeline in buckets of step.
func Experiments(ctx context.Context, q Querier, since, until time.Time, step time.Duration) ([]Experiment, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT feature FROM tollgate.experiments() ORDER BY feature`)
	if err != nil {
		return nil, translate(err)
	}
	features, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate(err)
	}
	var out []Experiment
	for _, f := range features {
		e, err := QueryExperiment(ctx, q, f, since, until, step)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// QueryExperiment returns feature's experiment over [since, until).
func QueryExperiment(ctx context.Context, q Querier, feature string, since, until time.Time, step time.Duration) (Experiment, error) {
	e := Experiment{Feature: feature, Step: step}
	// whole seconds: the buckets PostgreSQL returns (microseconds) are then the ones counted here
	since, until = since.Truncate(time.Second), until.Truncate(time.Second)
	rows, err := q.Query(ctx, `SELECT variant, weight, hit_limit, prompted, clicked, converted, conversion_rate, rate_low,
	       rate_high, difference, p_value FROM tollgate.experiment_results($1, $2, $3)`, feature, since, until)
	if err != nil {
		return e, translate(err)
	}
	e.Variants, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Variant, error) {
		var v Variant
		err := r.Scan(&v.Variant, &v.Weight, &v.HitLimit, &v.Prompted, &v.Clicked, &v.Converted, &v.Rate, &v.RateLow,
			&v.RateHigh, &v.Difference, &v.PValue)
		v.Significant = v.PValue != nil && *v.PValue < Significance
		return v, err
	})
	if err != nil {
		return e, translate(err)
	}
	e.Winner = Winner(e.Variants)
	rows, err = q.Query(ctx, `SELECT variant, bucket, hit_limit, converted FROM tollgate.experiment_timeline($1, $2, $3, $4)`,
		feature, since, until, step)
	if err != nil {
		return e, translate(err)
	}
	type bucket struct {
		variant   string
		at        time.Time
		hit, conv int64
	}
	buckets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (bucket, error) {
		var b bucket
		err := r.Scan(&b.variant, &b.at, &b.hit, &b.conv)
		return b, err
	})
	if err != nil {
		return e, translate(err)
	}
	// cumulative, at the end of every bucket of the range, for every variant
	type key struct {
		variant string
		at      int64
	}
	byKey := map[key]bucket{}
	for _, b := range buckets {
		byKey[key{b.variant, b.at.Unix()}] = b
	}
	for i := range e.Variants {
		v := &e.Variants[i]
		var hit, conv int64
		for at := since; at.Before(until); at = at.Add(step) {
			b := byKey[key{v.Variant, at.Unix()}]
			hit, conv = hit+b.hit, conv+b.conv
			v.Timeline = append(v.Timeline, Point{At: minTime(at.Add(step), until), HitLimit: hit, Converted: conv})
		}
	}
	return e, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Step is the timeline bucket of a range: a day, or a week beyond 180 days, at least an hour for short ranges.
func Step(since, until time.Time) time.Duration {
	d := until.Sub(since)
	switch {
	case d > 180*24*time.Hour:
		return 7 * 24 * time.Hour
	case d > 3*24*time.Hour:
		return 24 * time.Hour
	default:
		return time.Hour
	}
}

// Winner decides an experiment: among the variants significantly better than control, the best; else control,
// when every other variant is significantly worse; else none ("").
func Winner(vs []Variant) string {
	best := ""
	var bestRate float64
	others, worse := 0, 0
	for _, v := range vs {
		if v.Variant == "control" || v.Difference == nil || v.Rate == nil {
			continue
		}
		others++
		if !v.Significant {
			continue
		}
		if *v.Difference > 0 && (best == "" || *v.Rate > bestRate) {
			best, bestRate = v.Variant, *v.Rate
		}
		if *v.Difference < 0 {
			worse++
		}
	}
	if best == "" && others > 0 && worse == others {
		return "control"
	}
	return best
}

// Trials is tollgate.trial_funnel: trials that ended in the range, followed to their conversions.
type Trials struct {
	Trials         int64    `json:"trials"`
	Prompted       int64    `json:"prompted"`
	Converted      int64    `json:"converted"`
	Attributed     int64    `json:"attributed"`
	Organic        int64    `json:"organic"`
	ConversionRate *float64 `json:"conversion_rate"`
	PromptedRate   *float64 `json:"prompted_rate"`
}

// QueryTrials returns the trial funnel of [since, until).
func QueryTrials(ctx context.Context, q Querier, since, until time.Time) (Trials, error) {
	var t Trials
	rows, err := q.Query(ctx, `SELECT trials, prompted, converted, attributed, organic, conversion_rate, prompted_rate
		FROM tollgate.trial_funnel($1, $2)`, since, until)
	if err != nil {
		return t, translate(err)
	}
	t, err = pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (Trials, error) {
		var t Trials
		err := r.Scan(&t.Trials, &t.Prompted, &t.Converted, &t.Attributed, &t.Organic, &t.ConversionRate, &t.PromptedRate)
		return t, err
	})
	return t, translate(err)
}

// FormatP shows a p-value: "p = 0.012", "p < 0.001", "n/a".
func FormatP(p *float64) string {
	switch {
	case p == nil:
		return "n/a"
	case *p < 0.001:
		return "p < 0.001"
	default:
		return fmt.Sprintf("p = %.3f", *p)
	}
}

// FormatDifference shows a difference of rates in percentage points: "+17.0 pts"; nil is "".
func FormatDifference(d *float64) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf("%+.1f pts", *d*100)
}

// FormatInterval shows a Wilson interval: "4.3%–21.4%"; "n/a" without one.
func FormatInterval(lo, hi *float64) string {
	if lo == nil || hi == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%–%.1f%%", *lo*100, *hi*100)
}

// Subscription is a Stripe subscription that gives nobody a plan (tollgate.unmapped_subscriptions).
type Subscription struct {
	StripeSubscription string   `json:"stripe_subscription"`
	StripeCustomer     string   `json:"stripe_customer"`
	Customer           *string  `json:"customer"`
	Status             string   `json:"status"`
	PriceIDs           []string `json:"price_ids"`
	ProductIDs         []string `json:"product_ids"`
	Problem            string   `json:"problem"`
}

// Topup is a paid purchase of top-up packs that waits for its customer (tollgate.waiting_topups).
type Topup struct {
	StripeObject   string    `json:"stripe_object"`
	StripeCustomer *string   `json:"stripe_customer"`
	PriceIDs       []string  `json:"price_ids"`
	Quantities     []int64   `json:"quantities"`
	ReceivedAt     time.Time `json:"received_at"`
}

// Attention is what an operator should look at: emails per outbox status (dead ones were given up),
// subscriptions that give nobody a plan, and top-up purchases that wait for their customer.
type Attention struct {
	Emails        map[string]int64 `json:"emails"`
	Unmapped      []Subscription   `json:"unmapped_subscriptions"`
	WaitingTopups []Topup          `json:"waiting_topups"`
}

// DeadEmails is how many upgrade prompts were given up.
func (a Attention) DeadEmails() int64 { return a.Emails["dead"] }

// QueryAttention reads the outbox counts and the unmapped subscriptions.
func QueryAttention(ctx context.Context, q Querier) (Attention, error) {
	a := Attention{Emails: map[string]int64{}, Unmapped: []Subscription{}, WaitingTopups: []Topup{}}
	rows, err := q.Query(ctx, `SELECT status, emails FROM tollgate.outbox_counts()`)
	if err != nil {
		return a, translate(err)
	}
	var status string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&status, &n}, func() error { a.Emails[status] = n; return nil }); err != nil {
		return a, translate(err)
	}
	rows, err = q.Query(ctx, `SELECT stripe_subscription, stripe_customer, customer, status, price_ids, product_ids, problem
	                            FROM tollgate.unmapped_subscriptions()`)
	if err != nil {
		return a, translate(err)
	}
	a.Unmapped, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Subscription, error) {
		var s Subscription
		err := row.Scan(&s.StripeSubscription, &s.StripeCustomer, &s.Customer, &s.Status, &s.PriceIDs, &s.ProductIDs, &s.Problem)
		return s, err
	})
	if err != nil {
		return a, translate(err)
	}
	rows, err = q.Query(ctx, `SELECT stripe_object, stripe_customer, price_ids, quantities, received_at FROM tollgate.waiting_topups()`)
	if err != nil {
		return a, translate(err)
	}
	a.WaitingTopups, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Topup, error) {
		var p Topup
		err := row.Scan(&p.StripeObject, &p.StripeCustomer, &p.PriceIDs, &p.Quantities, &p.ReceivedAt)
		return p, err
	})
	if err != nil {
		return a, translate(err)
	}
	return a, nil
}

func translate(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "TG422" {
		return fmt.Errorf("%w: %s", ErrBadRange, pgErr.Message)
	}
	return err
}

// FormatRate shows a conversion rate as a percentage with one decimal; nil is "n/a".
func FormatRate(f *float64) string {
	if f == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", *f*100)
}

// FormatSeconds shows a time from prompt to conversion in its two largest units (45s, 12m 5s, 3h 20m, 4d 2h);
// nil is "n/a".
func FormatSeconds(s *float64) string {
	if s == nil {
		return "n/a"
	}
	d := time.Duration(math.Round(*s)) * time.Second
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

var daysRE = regexp.MustCompile(`^([0-9]{1,6})d$`)

// DefaultSince is the start of the range when none is given: the last 30 days.
const DefaultSince = "30d"

// ParseRange reads a range [since, until) from the strings a user gives, relative to now. Each bound is a
// duration back from now (30d, 12h, 90m: <N>d and Go durations), a date (2025-01-31, UTC) or an RFC 3339 time;
// "" is DefaultSince for since and now for until. A date as until means the end of that day, so that
// since=2025-01-01 until=2025-01-31 is all of January.
func ParseRange(since, until string, now time.Time) (time.Time, time.Time, error) {
	if strings.TrimSpace(since) == "" {
		since = DefaultSince
	}
	s, err := parseTime(since, now, false)
	if err != nil {
		return s, s, err
	}
	u, err := parseTime(until, now, true)
	if err != nil {
		return s, u, err
	}
	if !s.Before(u) {
		return s, u, fmt.Errorf("%w: since %s is not before until %s", ErrBadRange, s.Format(time.RFC3339), u.Format(time.RFC3339))
	}
	return s, u, nil
}

func parseTime(s string, now time.Time, endOfDay bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "now" {
		return now, nil
	}
	if m := daysRE.FindStringSubmatch(s); m != nil {
		days, _ := strconv.Atoi(m[1])
		return now.AddDate(0, 0, -days), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if endOfDay {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: %q is not a duration (30d, 12h), a date (2025-01-31) or an RFC 3339 time", ErrBadRange, s)
}
