package mailer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The outbox's SQL functions (sql/email_*.sql), called as a member of tollgate_sidecar. This file is the one
// place that talks to them.

// claim is one row returned by tollgate.outbox_claim. Its timestamps are pgtype.Timestamptz because they may be
// infinite, which time.Time cannot hold: a lifetime window starts at -infinity and has no end. Read them with
// periodStart and resetsAt (EventAt is not used).
type claim struct {
	ID           int64
	Attempt      int
	Interrupted  bool
	LastProvider *string
	Template     string
	Customer     string
	ToEmail      *string
	Feature      string
	Plan         string
	Used         int64
	Quota        *int64
	PeriodStart  pgtype.Timestamptz
	ResetsAt     pgtype.Timestamptz
	Message      *string
	EventAt      pgtype.Timestamptz
	Sender       *string
	Subject      *string
	BodyText     *string
	BodyHTML     *string
	EventID      *int64
	Variant      *string
}

// periodStart is the start of the email's window; zero when the window has none (lifetime: -infinity).
func (c *claim) periodStart() time.Time {
	if t := finite(c.PeriodStart); t != nil {
		return *t
	}
	return time.Time{}
}

// resetsAt is when the email's window resets; nil when it does not end at a fixed time.
func (c *claim) resetsAt() *time.Time { return finite(c.ResetsAt) }

// finite returns the time of ts, or nil when ts is NULL or ±infinity.
func finite(ts pgtype.Timestamptz) *time.Time {
	if !ts.Valid || ts.InfinityModifier != pgtype.Finite {
		return nil
	}
	t := ts.Time
	return &t
}

// DBError is a failed call of an outbox function, with the server's SQLSTATE when there is one.
type DBError struct {
	Func string
	Code string // SQLSTATE, "" when the error did not come from the server
	Err  error
}

func (e *DBError) Error() string { return fmt.Sprintf("tollgate.%s: %v", e.Func, e.Err) }
func (e *DBError) Unwrap() error { return e.Err }

func dbError(fn string, err error) error {
	if err == nil {
		return nil
	}
	e := &DBError{Func: fn, Err: err}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		e.Code = pgErr.Code
	}
	return e
}

type outbox struct{ pool *pgxpool.Pool }

func (o outbox) collect(ctx context.Context, max int) (int, error) {
	var n int
	err := o.pool.QueryRow(ctx, `SELECT tollgate.outbox_collect($1)`, max).Scan(&n)
	return n, dbError("outbox_collect", err)
}

func (o outbox) claim(ctx context.Context, worker string, n int, stale time.Duration) ([]claim, error) {
	rows, err := o.pool.Query(ctx, `
		SELECT id, attempt, interrupted, last_provider, template, customer, to_email, feature, plan, used, quota,
		       period_start, resets_at, message, event_at, sender, subject, body_text, body_html, event_id, variant
		  FROM tollgate.outbox_claim($1, $2, $3)`, worker, n, stale)
	if err != nil {
		return nil, dbError("outbox_claim", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[claim])
	return out, dbError("outbox_claim", err)
}

// begin records the hand-off and returns the email to send; ok is false when the claim was lost.
func (o outbox) begin(ctx context.Context, c *claim, provider string, from string, r Rendered) (to string, stored Rendered, sender string, ok bool, err error) {
	var toPtr *string
	err = o.pool.QueryRow(ctx, `SELECT email_to, email_from, email_subject, email_text, email_html
		FROM tollgate.outbox_begin($1, $2, $3, $4, $5, $6, $7)`,
		c.ID, c.Attempt, provider, from, r.Subject, r.Text, r.HTML,
	).Scan(&toPtr, &sender, &stored.Subject, &stored.Text, &stored.HTML)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", Rendered{}, "", false, nil
	}
	if err != nil {
		return "", Rendered{}, "", false, dbError("outbox_begin", err)
	}
	if toPtr != nil {
		to = *toPtr
	}
	return to, stored, sender, true, nil
}

// sent marks the email sent and returns the seconds from its event to now (nil: it was marked already).
func (o outbox) sent(ctx context.Context, id int64, provider, providerID string) (*float64, error) {
	var secs *float64
	err := o.pool.QueryRow(ctx, `SELECT tollgate.outbox_sent($1, $2, $3)`, id, provider, providerID).Scan(&secs)
	return secs, dbError("outbox_sent", err)
}

// failed records a failed attempt and returns the new status: failed, dead, or "" when the claim was lost.
func (o outbox) failed(ctx context.Context, c *claim, msg string, retryIn time.Duration, permanent bool, maxAttempts int) (string, error) {
	var status *string
	err := o.pool.QueryRow(ctx, `SELECT tollgate.outbox_failed($1, $2, $3, $4, $5, $6)`,
		c.ID, c.Attempt, msg, retryIn, permanent, maxAttempts).Scan(&status)
	if err != nil || status == nil {
		return "", dbError("outbox_failed", err)
	}
	return *status, nil
}

// counts returns the number of emails in each status.
func (o outbox) counts(ctx context.Context) (map[string]int64, error) {
	rows, err := o.pool.Query(ctx, `SELECT status, emails FROM tollgate.outbox_counts()`)
	if err != nil {
		return nil, dbError("outbox_counts", err)
	}
	out := map[string]int64{}
	var s string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&s, &n}, func() error { out[s] = n; return nil })
	return out, dbError("outbox_counts", err)
}
