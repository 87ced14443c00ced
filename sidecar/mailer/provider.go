package mailer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// Message is one rendered email, ready for a provider.
type Message struct {
	// ID is the outbox row (tollgate.emails.id).
	ID int64
	// IdempotencyKey is derived from the outbox row: the same for every attempt at this email, different for
	// every other email. Resend gets it as the Idempotency-Key header.
	IdempotencyKey string
	// MessageID is the RFC 5322 Message-ID, derived from the row like IdempotencyKey, with its angle brackets.
	MessageID string
	From      string
	To        string
	Subject   string
	Text      string
	HTML      string
}

// Provider hands emails to a mail service.
type Provider interface {
	// Name is resend, smtp or log: the provider label of metrics and of tollgate.emails.provider.
	Name() string
	// Send hands msg over and returns the provider's id of it. An error that is not a *SendError is treated as
	// retryable.
	Send(ctx context.Context, msg *Message) (providerID string, err error)
	// Idempotent reports whether sending the same Message again cannot deliver it twice, so that an attempt cut
	// off mid-send may simply be repeated.
	Idempotent() bool
}

// SendError classifies a failed Send.
type SendError struct {
	// Permanent errors fail the email at once; others are retried with backoff.
	Permanent bool
	// RetryAfter is how long the provider asked us to wait (429 Retry-After); 0 means use the backoff.
	RetryAfter time.Duration
	// Unknown means the provider may have accepted the email before the error: retrying it could deliver it
	// twice unless the provider is idempotent.
	Unknown bool
	Err     error
}

func (e *SendError) Error() string { return e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }

func permanent(format string, args ...any) *SendError {
	return &SendError{Permanent: true, Err: fmt.Errorf(format, args...)}
}

func retryable(err error) *SendError { return &SendError{Err: err} }

// classify gives the SendError of any error from a provider.
func classify(err error) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	return retryable(err)
}

// rowKey is what keys and Message-IDs are derived from: the row id plus a hash of what makes the row unique,
// so rows of two databases (staging and production on one Resend account, or a restored backup) that happen to
// share an id do not share a key. A zero periodStart is a window without a start (lifetime, stored as
// -infinity); the keys of windows with one are what they always were.
func rowKey(id int64, customer, feature string, periodStart time.Time) string {
	start := "-infinity"
	if !periodStart.IsZero() {
		start = strconv.FormatInt(periodStart.UnixMicro(), 10)
	}
	h := sha256.Sum256([]byte(customer + "\x00" + feature + "\x00" + start))
	return strconv.FormatInt(id, 10) + "-" + hex.EncodeToString(h[:8])
}

// IdempotencyKey is the provider idempotency key of an outbox row; periodStart is zero for a window without a
// start (lifetime).
func IdempotencyKey(id int64, customer, feature string, periodStart time.Time) string {
	return "tollgate-email-" + rowKey(id, customer, feature, periodStart)
}

// MessageID is the Message-ID of an outbox row, in the domain of the sender's address; periodStart as in
// IdempotencyKey.
func MessageID(id int64, customer, feature string, periodStart time.Time, from string) string {
	domain := "tollgate.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && i < len(a.Address)-1 {
			domain = a.Address[i+1:]
		}
	}
	return "<tollgate-email-" + rowKey(id, customer, feature, periodStart) + "@" + domain + ">"
}
