-- 005: free -> paid conversions and plan changes, attributed to the upgrade
-- prompt that led to them. Written by a trigger in the same transaction as
-- the plan change, so a replayed webhook that changes nothing writes nothing.
CREATE TABLE tollgate.plan_changes (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer    text NOT NULL,
  from_plan   text NOT NULL,
  to_plan     text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('conversion', 'churn', 'change')),
  email_id    bigint REFERENCES tollgate.emails ON DELETE SET NULL,
  event_id    bigint REFERENCES tollgate.events ON DELETE SET NULL,
  feature     text,
  changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plan_changes_customer ON tollgate.plan_changes (customer, changed_at);
CREATE INDEX plan_changes_changed_at ON tollgate.plan_changes (changed_at);
COMMENT ON COLUMN tollgate.plan_changes.kind IS
  'conversion: from the default plan to an entitled paid plan; churn: back to the default plan; change: paid to paid.';
COMMENT ON COLUMN tollgate.plan_changes.email_id IS 'The upgrade prompt this conversion is attributed to (NULL = organic).';

CREATE VIEW tollgate.conversions AS
  SELECT id, customer, from_plan, to_plan, changed_at AS converted_at, email_id, event_id, feature
    FROM tollgate.plan_changes
   WHERE kind = 'conversion';

---- create above / drop below ----

DROP VIEW tollgate.conversions;
DROP TABLE tollgate.plan_changes;
