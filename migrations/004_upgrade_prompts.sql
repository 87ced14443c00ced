-- 004: the email outbox of upgrade prompts.
--
-- A limit_reached event (tollgate.events) whose feature has an upgrade prompt
-- becomes at most one email row per customer, feature and window. Sidecar
-- replicas claim rows with FOR UPDATE SKIP LOCKED. Each row's id gives the
-- provider's idempotency key and the SMTP Message-ID, and the email is rendered
-- once, at its first hand-off to the provider, and stored here: every retry
-- sends the same bytes, so Resend can recognise a repeat (docs/emails.md says
-- what is guaranteed for each provider). The functions that move rows between
-- states are in sql/email_*.sql.
--
-- Operators: rows are never deleted by tollgate. Sent and skipped rows are the
-- history that conversions are attributed to; prune old ones by created_at if
-- the table grows too large for you.
ALTER TABLE tollgate.customers ADD COLUMN email_opt_out boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN tollgate.customers.email_opt_out IS
  'The customer asked for no upgrade prompts (tollgate.set_email_opt_out). Checked when an email is collected '
  'and again when it is claimed for sending.';

-- the events the sidecar has turned into emails (or found nothing to send for)
ALTER TABLE tollgate.events ADD COLUMN processed_at timestamptz;
CREATE INDEX events_unprocessed ON tollgate.events (id) WHERE processed_at IS NULL;
COMMENT ON COLUMN tollgate.events.processed_at IS
  'When tollgate.outbox_collect looked at this event; NULL = not yet.';

CREATE TABLE tollgate.emails (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id        bigint NOT NULL REFERENCES tollgate.events ON DELETE CASCADE,
  customer        text NOT NULL,
  feature         text NOT NULL,
  period_start    timestamptz NOT NULL,
  template        text NOT NULL,
  status          text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead', 'skipped')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  claimed_by      text,
  claimed_at      timestamptz,
  handed_off_at   timestamptz,
  provider        text,
  -- the email as first handed off, sent byte for byte on every retry
  to_email        text,
  sender          text,
  subject         text,
  body_text       text,
  body_html       text,
  sent_at         timestamptz,
  provider_id     text,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- at most one prompt per customer, feature and window
  UNIQUE (customer, feature, period_start)
);
CREATE INDEX emails_due ON tollgate.emails (next_attempt_at) WHERE status IN ('pending', 'failed', 'sending');
-- sent prompts by customer: attributing a conversion (005 adds one by time, for the funnel)
CREATE INDEX emails_customer_sent ON tollgate.emails (customer, sent_at) WHERE status = 'sent';
COMMENT ON TABLE tollgate.emails IS
  'The outbox of upgrade prompts: one row per customer, feature and window whose limit was reached.';
COMMENT ON COLUMN tollgate.emails.status IS
  'pending: to send; sending: claimed by a worker (claimed_by), reclaimed when that worker is gone or its claim is '
  'stale; sent; failed: will be retried at next_attempt_at; dead: given up after max attempts, a permanent provider '
  'error or an SMTP hand-off whose outcome is unknown (last_error says which); skipped: no email address or opted out.';
COMMENT ON COLUMN tollgate.emails.attempts IS 'How many times the row was claimed; each claim is one attempt.';
COMMENT ON COLUMN tollgate.emails.claimed_by IS
  'The worker of the current or last claim. A live worker holds a session advisory lock named after it '
  '(tollgate.outbox_register), so a crashed worker''s claims are taken over at once.';
COMMENT ON COLUMN tollgate.emails.handed_off_at IS
  'Set when a worker starts handing the email to the provider and cleared when the attempt ends in a retryable '
  'failure: a row claimed again while it is set was interrupted mid-send, outcome unknown.';
COMMENT ON COLUMN tollgate.emails.provider IS 'The provider of the last hand-off: resend, smtp or log.';
COMMENT ON COLUMN tollgate.emails.provider_id IS 'The provider''s message id (Resend email id, SMTP Message-ID).';
COMMENT ON COLUMN tollgate.emails.last_error IS 'Why the last attempt failed, or why the row was skipped; the provider''s message is kept.';

---- create above / drop below ----

DROP TABLE tollgate.emails;
DROP INDEX tollgate.events_unprocessed;
ALTER TABLE tollgate.events DROP COLUMN processed_at;
ALTER TABLE tollgate.customers DROP COLUMN email_opt_out;
