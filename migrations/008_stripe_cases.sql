-- 008: what the Stripe sync keeps for the cases real accounts hit: paused
-- collection, Connect accounts, subscriptions Stripe no longer knows, trials
-- (the trial prompt, and trial -> paid conversions).
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

-- trial_will_end events: a Stripe trial ends soon without a payment method
-- (the sidecar writes it, for the trial prompt; feature is '' and
-- period_start the trial's start, so the unique key makes it fire once per
-- trial).
ALTER TABLE tollgate.events DROP CONSTRAINT events_kind_check;
ALTER TABLE tollgate.events ADD CONSTRAINT events_kind_check
  CHECK (kind IN ('threshold', 'limit_reached', 'trial_will_end'));

-- Trial -> paid conversions: a Stripe subscription that went from trialing to
-- active, written by the subscriptions trigger (sql/subscriptions_trigger.sql)
-- in the transaction that stored the change. A trial to paid is no change of
-- plan (trialing already gives the plan), so plan_changes does not see it.
-- The trial prompt it is attributed to (a sent email of the trial's
-- trial_will_end event) is copied in, like plan_changes.
CREATE TABLE tollgate.trial_conversions (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stripe_subscription text NOT NULL,
  customer            text NOT NULL,
  plan                text,
  trial_start         timestamptz,
  trial_end           timestamptz,
  email_id            bigint REFERENCES tollgate.emails ON DELETE SET NULL,
  prompted_at         timestamptz,
  converted_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (stripe_subscription, trial_start)
);
CREATE INDEX trial_conversions_trial_end ON tollgate.trial_conversions (trial_end);
COMMENT ON TABLE tollgate.trial_conversions IS
  'Stripe trials that turned into paid subscriptions (status trialing -> active), one row per subscription and trial.';
COMMENT ON COLUMN tollgate.trial_conversions.plan IS 'The plan the subscription gives (NULL = no plan names its prices).';
COMMENT ON COLUMN tollgate.trial_conversions.email_id IS 'The trial prompt sent for this trial; NULL = none was sent, or it was pruned.';
COMMENT ON COLUMN tollgate.trial_conversions.prompted_at IS 'When that prompt was sent (emails.sent_at); NULL = none.';
COMMENT ON COLUMN tollgate.trial_conversions.converted_at IS 'When tollgate stored the subscription as active (the start of that transaction).';

---- create above / drop below ----

DROP TABLE tollgate.trial_conversions;
DELETE FROM tollgate.events WHERE kind = 'trial_will_end';
ALTER TABLE tollgate.events DROP CONSTRAINT events_kind_check;
ALTER TABLE tollgate.events ADD CONSTRAINT events_kind_check CHECK (kind IN ('threshold', 'limit_reached'));
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
