-- 003: what the sidecar's Stripe sync keeps besides tollgate.subscriptions (002),
-- and the columns of tollgate.subscriptions that only the sync reads.
--
-- Subscriptions: the Connect account a subscription lives in (re-fetched with
-- that Stripe-Account), its paused collection (which gives no plan unless the
-- setting pause_collection_keeps_plan is true), its trial (for the trial
-- prompt and trial -> paid conversions), whether a payment method is on file,
-- and when Stripe last answered 404 for it (gone: it gives no plan).
ALTER TABLE tollgate.subscriptions
  ADD COLUMN stripe_account     text,
  ADD COLUMN pause_collection   text,
  ADD COLUMN pause_resumes_at   timestamptz,
  ADD COLUMN trial_start        timestamptz,
  ADD COLUMN trial_end          timestamptz,
  ADD COLUMN has_payment_method boolean,
  ADD COLUMN gone_at            timestamptz;
CREATE INDEX subscriptions_pause_resumes_at ON tollgate.subscriptions (pause_resumes_at)
  WHERE pause_collection IS NOT NULL AND pause_resumes_at IS NOT NULL AND gone_at IS NULL;
-- tollgate.trial_funnel: trials by their end
CREATE INDEX subscriptions_trial_end ON tollgate.subscriptions (trial_end) WHERE trial_end IS NOT NULL;
COMMENT ON COLUMN tollgate.subscriptions.stripe_account IS 'Stripe Event.account (acct_...) of a connected account the subscription lives in; NULL = the platform''s own account.';
COMMENT ON COLUMN tollgate.subscriptions.pause_collection IS 'Stripe Subscription.pause_collection.behavior (void, keep_as_draft, mark_uncollectible); NULL = collection not paused. A paused collection gives no plan unless the setting pause_collection_keeps_plan is true.';
COMMENT ON COLUMN tollgate.subscriptions.pause_resumes_at IS 'Stripe Subscription.pause_collection.resumes_at: from then on the pause no longer counts, and the sidecar re-fetches the subscription.';
COMMENT ON COLUMN tollgate.subscriptions.trial_start IS 'Stripe Subscription.trial_start.';
COMMENT ON COLUMN tollgate.subscriptions.trial_end IS 'Stripe Subscription.trial_end.';
COMMENT ON COLUMN tollgate.subscriptions.has_payment_method IS 'Whether the subscription (default_payment_method, default_source) or its customer (invoice_settings.default_payment_method, default_source) has a payment method; NULL = unknown.';
COMMENT ON COLUMN tollgate.subscriptions.gone_at IS 'When Stripe answered 404 (resource_missing) for this subscription: it gives no plan. NULL = Stripe knows it.';

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

DROP INDEX tollgate.subscriptions_trial_end;
DROP INDEX tollgate.subscriptions_pause_resumes_at;
ALTER TABLE tollgate.subscriptions
  DROP COLUMN stripe_account,
  DROP COLUMN pause_collection,
  DROP COLUMN pause_resumes_at,
  DROP COLUMN trial_start,
  DROP COLUMN trial_end,
  DROP COLUMN has_payment_method,
  DROP COLUMN gone_at;

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
