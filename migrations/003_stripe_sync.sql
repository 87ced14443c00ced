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

-- Links from a Stripe customer to a tollgate customer that the sidecar found
-- in Stripe, besides the one the app makes with tollgate.set_customer
-- (customers.stripe_customer, which always wins): the Stripe customer's
-- metadata.tollgate_customer, then the client_reference_id of a completed
-- Checkout Session. Kept apart from customers.stripe_customer so that the
-- order of precedence survives (a later metadata link beats a checkout link,
-- and neither can override the app's own).
CREATE TABLE tollgate.stripe_links (
  stripe_customer text PRIMARY KEY,
  customer        text NOT NULL CHECK (customer <> ''),
  source          text NOT NULL CHECK (source IN ('metadata', 'checkout')),
  source_id       text,
  linked_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_links_customer ON tollgate.stripe_links (customer);
COMMENT ON TABLE tollgate.stripe_links IS
  'Stripe customers linked by the sidecar: from Customer.metadata.tollgate_customer or a Checkout Session''s client_reference_id.';
COMMENT ON COLUMN tollgate.stripe_links.stripe_customer IS 'Stripe Customer.id (cus_...).';
COMMENT ON COLUMN tollgate.stripe_links.customer IS 'Stripe Customer.metadata.tollgate_customer, or Checkout Session.client_reference_id.';
COMMENT ON COLUMN tollgate.stripe_links.source IS 'metadata: Customer.metadata.tollgate_customer; checkout: Checkout Session.client_reference_id (metadata wins).';
COMMENT ON COLUMN tollgate.stripe_links.source_id IS 'The Checkout Session.id (cs_...) a checkout link came from.';

-- Bookkeeping of reconcile runs: one row per run, for /metrics and tollgate report.
CREATE TABLE tollgate.sync_runs (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  subscriptions integer NOT NULL DEFAULT 0,
  error         text
);
COMMENT ON COLUMN tollgate.sync_runs.finished_at IS 'NULL while running, or when the replica running it died.';
COMMENT ON COLUMN tollgate.sync_runs.subscriptions IS 'Stripe subscriptions listed (status=all) and upserted by the run.';
COMMENT ON COLUMN tollgate.sync_runs.error IS 'Why the run stopped early; NULL = it listed every subscription.';

-- The sidecar's /readyz compares the schema version with the migrations built
-- into its binary, so its role may read tern's version table (and nothing else
-- outside its functions). Skipped when the version table has another name.
DO $$
BEGIN
  IF to_regclass('public.schema_version') IS NOT NULL THEN
    GRANT SELECT ON public.schema_version TO tollgate_sidecar;
  END IF;
END
$$;

---- create above / drop below ----

DO $$
BEGIN
  IF to_regclass('public.schema_version') IS NOT NULL THEN
    REVOKE SELECT ON public.schema_version FROM tollgate_sidecar;
  END IF;
END
$$;

DROP TABLE tollgate.sync_runs;
DROP TABLE tollgate.stripe_links;
DROP TABLE tollgate.stripe_events;
