-- 003: what the sidecar's Stripe sync keeps besides tollgate.subscriptions (002).
--
-- stripe_events records each webhook event id once, in the same transaction
-- as its effect, so a redelivered or concurrently duplicated event does
-- nothing the second time. The payload is not stored: webhooks are a signal
-- to re-fetch from Stripe, never state to copy.
CREATE TABLE tollgate.stripe_events (
  id             text PRIMARY KEY,
  type           text NOT NULL,
  api_version    text,
  object_id      text,
  stripe_created timestamptz,
  received_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN tollgate.stripe_events.id IS 'Stripe Event.id (evt_...).';
COMMENT ON COLUMN tollgate.stripe_events.type IS 'Stripe Event.type (customer.subscription.updated, ...).';
COMMENT ON COLUMN tollgate.stripe_events.api_version IS 'Stripe Event.api_version the event was rendered with.';
COMMENT ON COLUMN tollgate.stripe_events.object_id IS 'Stripe Event.data.object.id (the subscription, customer, session or invoice).';
COMMENT ON COLUMN tollgate.stripe_events.stripe_created IS 'Stripe Event.created.';
CREATE INDEX stripe_events_received_at ON tollgate.stripe_events (received_at);

-- Bookkeeping of reconcile runs: one row per run, for /metrics and tollgate report.
CREATE TABLE tollgate.sync_runs (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  subscriptions integer NOT NULL DEFAULT 0,
  error         text
);

---- create above / drop below ----

DROP TABLE tollgate.sync_runs;
DROP TABLE tollgate.stripe_events;
