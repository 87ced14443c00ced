-- 007: entitlements beyond the plan: per-customer overrides, grants (top-up
-- packs among them), idempotent consume, and the tollgate_admin role.
--
-- tollgate_admin is for support tools: an operator grants it to a support or
-- admin database user (GRANT tollgate_admin TO support). It may set overrides
-- and grant units; the app's role (tollgate_app) may not, so the app cannot
-- raise its own customers' quotas. Like the roles of 001 it is cluster-wide,
-- created when absent, and kept on the way down.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'tollgate_admin') THEN
    BEGIN
      CREATE ROLE tollgate_admin NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- another database of this cluster created it first
    END;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA tollgate TO tollgate_admin;

-- A customer's own quota for a feature, in place of the plan's until `until`.
CREATE TABLE tollgate.overrides (
  customer   text NOT NULL,
  feature    text NOT NULL REFERENCES tollgate.features ON DELETE CASCADE,
  quota      bigint CHECK (quota >= 0),
  until      timestamptz,
  reason     text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer, feature)
);
COMMENT ON TABLE tollgate.overrides IS
  'Per-customer quotas that replace the plan''s for a feature: quota NULL = unlimited, until NULL = for good.';

-- Units given on top of the window quota, spent once the window's quota is
-- used up, across windows, until they expire. A top-up pack bought in Stripe
-- is a grant keyed by the Stripe object and the pack.
CREATE TABLE tollgate.grants (
  customer   text NOT NULL,
  id         bigint GENERATED ALWAYS AS IDENTITY,
  feature    text NOT NULL REFERENCES tollgate.features ON DELETE CASCADE,
  amount     bigint NOT NULL CHECK (amount > 0),
  spent      bigint NOT NULL DEFAULT 0 CHECK (spent >= 0 AND spent <= amount),
  expires_at timestamptz,
  reason     text,
  key        text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer, id),
  UNIQUE (customer, key)
);
CREATE INDEX grants_customer_feature ON tollgate.grants (customer, feature);
COMMENT ON COLUMN tollgate.grants.key IS 'Makes a grant idempotent: a second grant with the same key for the customer does nothing.';

-- Top-up packs sold in Stripe (tollgate.yaml, topups:): a payment for the
-- price grants amount of feature, expiring after expires (NULL = never).
CREATE TABLE tollgate.topups (
  topup        text PRIMARY KEY CHECK (topup ~ '^[a-z][a-z0-9_]{0,62}$'),
  stripe_price text NOT NULL UNIQUE,
  feature      text NOT NULL REFERENCES tollgate.features ON DELETE CASCADE,
  amount       bigint NOT NULL CHECK (amount > 0),
  expires      interval CHECK (expires > interval '0')
);
COMMENT ON COLUMN tollgate.topups.stripe_price IS 'Stripe Price.id (price_...) of the pack.';

-- consume and require with an idempotency key: the first call's verdict, kept
-- at least 24 hours.
CREATE TABLE tollgate.idempotency_keys (
  customer   text NOT NULL,
  key        text NOT NULL,
  feature    text NOT NULL,
  amount     bigint NOT NULL,
  verdict    jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer, key)
);
CREATE INDEX idempotency_keys_created_at ON tollgate.idempotency_keys (created_at);

-- The usage row's copy of the configuration now also holds the grant units
-- left and the moment the copy goes stale (the window's end, an override's
-- until or a grant's expiry, whichever comes first). Existing rows start
-- stale and are refreshed by their next call.
ALTER TABLE tollgate.usage
  ADD COLUMN granted bigint NOT NULL DEFAULT 0,
  ADD COLUMN valid_until timestamptz NOT NULL DEFAULT '-infinity';
COMMENT ON COLUMN tollgate.usage.granted IS 'Grant units left for this customer and feature when the row was copied (spent only by the full path).';
COMMENT ON COLUMN tollgate.usage.valid_until IS 'The copy of the configuration holds until then: the window''s end, an override''s until or a grant''s expiry.';

ALTER TYPE tollgate.verdict ADD ATTRIBUTE granted bigint;
COMMENT ON TYPE tollgate.verdict IS
  'The answer of consume, check, require, refund and usage: whether the call is allowed, the customer''s plan, '
  'usage in the current window, the quota (NULL = unlimited), what remains of it (NULL = unlimited), when the '
  'window resets (NULL = never), when blocked or over quota the message to show, and the granted units left on '
  'top of the quota (grants and top-up packs).';

---- create above / drop below ----

ALTER TYPE tollgate.verdict DROP ATTRIBUTE granted;
ALTER TABLE tollgate.usage DROP COLUMN valid_until, DROP COLUMN granted;
DROP TABLE tollgate.idempotency_keys;
DROP TABLE tollgate.topups;
DROP TABLE tollgate.grants;
DROP TABLE tollgate.overrides;
REVOKE USAGE ON SCHEMA tollgate FROM tollgate_admin;
