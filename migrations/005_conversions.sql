-- 005: plan changes (free -> paid conversions, churn, paid -> paid changes),
-- each conversion attributed to the upgrade prompt that led to it.
--
-- A trigger on tollgate.customers (sql/conversion_trigger.sql) writes these
-- rows in the same transaction as the plan change, so a replayed webhook that
-- changes no plan writes nothing, and a rolled-back plan change leaves no row.
-- The attribution is copied into the row when it is written (the prompt's
-- feature and send time): pruning old emails or events keeps the history of
-- conversions intact (email_id and event_id then become NULL).
--
-- Operators: rows are never deleted by tollgate; the table grows by one row
-- per plan change, which is small next to usage and events.
CREATE TABLE tollgate.plan_changes (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer    text NOT NULL,
  from_plan   text NOT NULL,
  to_plan     text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('conversion', 'churn', 'change')),
  email_id    bigint REFERENCES tollgate.emails ON DELETE SET NULL,
  event_id    bigint REFERENCES tollgate.events ON DELETE SET NULL,
  feature     text,
  prompted_at timestamptz,
  changed_at  timestamptz NOT NULL DEFAULT now(),
  -- the transaction that wrote the row: plan changes of one customer within
  -- one transaction fold into one row (a plan removed and replaced at once is
  -- one change, not a churn and a conversion)
  xact        xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
  CHECK ((feature IS NULL) = (prompted_at IS NULL)),
  CHECK (kind = 'conversion' OR feature IS NULL)
);
CREATE INDEX plan_changes_customer ON tollgate.plan_changes (customer, changed_at);
CREATE INDEX plan_changes_changed_at ON tollgate.plan_changes (changed_at);
COMMENT ON TABLE tollgate.plan_changes IS
  'Every change of a customer''s plan, written by a trigger in the transaction that changed it.';
COMMENT ON COLUMN tollgate.plan_changes.from_plan IS 'The plan before (the default plan''s name when it was the default plan).';
COMMENT ON COLUMN tollgate.plan_changes.to_plan IS 'The plan after (the default plan''s name when it is the default plan).';
COMMENT ON COLUMN tollgate.plan_changes.kind IS
  'conversion: from the default plan to an entitled paid plan; churn: back to the default plan; change: paid to paid.';
COMMENT ON COLUMN tollgate.plan_changes.email_id IS
  'The upgrade prompt (a sent email) this conversion is attributed to; NULL = organic, or the email was pruned.';
COMMENT ON COLUMN tollgate.plan_changes.event_id IS
  'The limit_reached event of that prompt; NULL = organic, or the event was pruned.';
COMMENT ON COLUMN tollgate.plan_changes.feature IS 'The feature of that prompt; NULL = organic.';
COMMENT ON COLUMN tollgate.plan_changes.prompted_at IS 'When that prompt was sent (emails.sent_at); NULL = organic.';
COMMENT ON COLUMN tollgate.plan_changes.changed_at IS 'When the plan changed (the start of the transaction that changed it).';
COMMENT ON COLUMN tollgate.plan_changes.xact IS 'The transaction that wrote this row.';

CREATE VIEW tollgate.conversions AS
  SELECT id, customer, from_plan, to_plan, changed_at AS converted_at, email_id, event_id, feature, prompted_at
    FROM tollgate.plan_changes
   WHERE kind = 'conversion';
COMMENT ON VIEW tollgate.conversions IS
  'Free -> paid conversions; feature and prompted_at name the upgrade prompt each is attributed to (NULL = organic).';

-- tollgate.funnel: the prompts sent since a time, without reading older ones
CREATE INDEX emails_sent_at ON tollgate.emails (sent_at) WHERE status = 'sent';

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

DROP INDEX tollgate.emails_sent_at;
DROP VIEW tollgate.conversions;
DROP TABLE tollgate.plan_changes;
