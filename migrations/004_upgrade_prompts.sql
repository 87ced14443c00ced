-- 004: the email outbox of upgrade prompts.
--
-- A limit event (tollgate.events) whose feature has an upgrade prompt becomes
-- at most one email row per customer, feature and window. Sidecar replicas
-- claim rows with FOR UPDATE SKIP LOCKED; each row's id gives the provider's
-- idempotency key, so a crash between sending and marking cannot send twice.
ALTER TABLE tollgate.customers ADD COLUMN email_opt_out boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN tollgate.customers.email_opt_out IS 'The customer asked for no upgrade prompts.';

-- the event rows the sidecar has turned into emails (or skipped)
ALTER TABLE tollgate.events ADD COLUMN processed_at timestamptz;
CREATE INDEX events_unprocessed ON tollgate.events (id) WHERE processed_at IS NULL;

CREATE TABLE tollgate.emails (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id        bigint NOT NULL REFERENCES tollgate.events ON DELETE CASCADE,
  customer        text NOT NULL,
  feature         text NOT NULL,
  period_start    timestamptz NOT NULL,
  template        text NOT NULL,
  to_email        text,
  status          text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead', 'skipped')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  claimed_at      timestamptz,
  sent_at         timestamptz,
  provider        text,
  provider_id     text,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- at most one prompt per customer, feature and window
  UNIQUE (customer, feature, period_start)
);
CREATE INDEX emails_due ON tollgate.emails (next_attempt_at) WHERE status IN ('pending', 'failed', 'sending');
COMMENT ON COLUMN tollgate.emails.status IS
  'pending: to send; sending: claimed by a worker (reclaimed when its claim is stale); sent; failed: will retry at '
  'next_attempt_at; dead: gave up after max attempts or a permanent error; skipped: no email address or opted out.';
COMMENT ON COLUMN tollgate.emails.provider_id IS 'The provider''s message id (Resend email id, SMTP Message-ID).';

---- create above / drop below ----

DROP TABLE tollgate.emails;
DROP INDEX tollgate.events_unprocessed;
ALTER TABLE tollgate.events DROP COLUMN processed_at;
ALTER TABLE tollgate.customers DROP COLUMN email_opt_out;
