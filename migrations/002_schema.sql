-- 002: the tollgate schema, its tables and the verdict type.
--
-- Every table is private to the role that runs the migrations (the owner).
-- Callers reach them only through the SECURITY DEFINER functions of the code
-- package (sql/, installed by the next migration). Every table is keyed by
-- customer where it holds per-customer data, and the configuration tables are
-- small, so the schema can be distributed with Citus (customer as the
-- distribution column, configuration as reference tables) without a rewrite.

CREATE SCHEMA tollgate;
COMMENT ON SCHEMA tollgate IS 'tollgate: freemium gating inside PostgreSQL. Call the functions; the tables are private.';
REVOKE ALL ON SCHEMA tollgate FROM PUBLIC;
GRANT USAGE ON SCHEMA tollgate TO tollgate_app, tollgate_sidecar;

CREATE TYPE tollgate.verdict AS (
  allowed   boolean,
  customer  text,
  feature   text,
  plan      text,
  used      bigint,
  quota     bigint,
  remaining bigint,
  resets_at timestamptz,
  message   text
);
COMMENT ON TYPE tollgate.verdict IS
  'The answer of consume, check, require, refund and usage: whether the call is allowed, the customer''s plan, '
  'usage in the current window, the quota (NULL = unlimited), what remains (NULL = unlimited), when the window '
  'resets (NULL = never) and, when blocked or over quota, the message to show.';

-- Settings that change what the functions do (not secrets): 'past_due_is_grace'.
CREATE TABLE tollgate.settings (
  key   text PRIMARY KEY,
  value text NOT NULL
);

CREATE TABLE tollgate.plans (
  plan            text PRIMARY KEY CHECK (plan ~ '^[a-z][a-z0-9_]{0,62}$'),
  is_default      boolean NOT NULL DEFAULT false,
  stripe_prices   text[] NOT NULL DEFAULT '{}',
  stripe_products text[] NOT NULL DEFAULT '{}',
  rank            integer NOT NULL DEFAULT 0,
  updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Exactly one default plan: at most one by this index, at least one by define_plan.
CREATE UNIQUE INDEX plans_one_default ON tollgate.plans ((true)) WHERE is_default;
COMMENT ON COLUMN tollgate.plans.is_default IS 'The plan of every customer without an entitled subscription (the free plan).';
COMMENT ON COLUMN tollgate.plans.stripe_prices IS 'Stripe Price ids (Price.id, price_...) whose subscriptions mean this plan.';
COMMENT ON COLUMN tollgate.plans.stripe_products IS 'Stripe Product ids (Product.id, prod_...) whose subscriptions mean this plan.';
COMMENT ON COLUMN tollgate.plans.rank IS 'When a customer has several entitled subscriptions, the plan with the highest rank wins.';

CREATE TABLE tollgate.features (
  feature        text PRIMARY KEY CHECK (feature ~ '^[a-z][a-z0-9_]{0,62}$'),
  period         text NOT NULL,
  -- period, parsed once by define_feature so the hot path never parses text:
  period_unit    text NOT NULL CHECK (period_unit IN ('month', 'billing', 'hour', 'day', 'rolling', 'lifetime')),
  period_length  integer NOT NULL DEFAULT 1 CHECK (period_length > 0),
  enforcement    text NOT NULL DEFAULT 'hard' CHECK (enforcement IN ('hard', 'soft')),
  notify_at      integer[] NOT NULL DEFAULT '{100}',
  message        text,
  upgrade_prompt text,
  updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN tollgate.features.notify_at IS 'Percents of the quota whose first crossing in a window writes a threshold event.';
COMMENT ON COLUMN tollgate.features.upgrade_prompt IS 'Email template of the upgrade prompt sent on this feature''s events; NULL = no email.';

CREATE TABLE tollgate.limits (
  plan    text NOT NULL REFERENCES tollgate.plans ON DELETE CASCADE,
  feature text NOT NULL REFERENCES tollgate.features ON DELETE CASCADE,
  quota   bigint CHECK (quota >= 0),
  PRIMARY KEY (plan, feature)
);
COMMENT ON TABLE tollgate.limits IS
  'What each plan may use of each feature per window. quota NULL = unlimited (or "on" for a boolean feature), '
  '0 = not included ("off"). A plan without a row here does not get the feature.';

-- Routes that the Django middleware gates ("POST /api/features/*").
CREATE TABLE tollgate.routes (
  method  text NOT NULL,
  pattern text NOT NULL,
  feature text NOT NULL REFERENCES tollgate.features ON DELETE CASCADE,
  amount  bigint NOT NULL DEFAULT 1 CHECK (amount > 0),
  PRIMARY KEY (method, pattern)
);

CREATE TABLE tollgate.customers (
  customer        text PRIMARY KEY CHECK (customer <> ''),
  email           text,
  stripe_customer text UNIQUE,
  plan            text REFERENCES tollgate.plans ON DELETE SET NULL,
  period_start    timestamptz,
  period_end      timestamptz,
  plan_epoch      bigint NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN tollgate.customers.customer IS 'The app''s own customer key (a user or account id, as text).';
COMMENT ON COLUMN tollgate.customers.stripe_customer IS 'Stripe Customer.id (cus_...) of this customer.';
COMMENT ON COLUMN tollgate.customers.plan IS 'The entitled plan from the customer''s subscriptions; NULL = the default plan. Kept by tollgate._refresh_customer.';
COMMENT ON COLUMN tollgate.customers.period_start IS 'Stripe current_period_start of the subscription that gives the plan (billing period).';
COMMENT ON COLUMN tollgate.customers.period_end IS 'Stripe current_period_end of the subscription that gives the plan (billing period).';
COMMENT ON COLUMN tollgate.customers.plan_epoch IS 'Counts changes of plan and billing period; usage rows copied their plan at one epoch.';
COMMENT ON COLUMN tollgate.customers.created_at IS 'Sign-up: the anchor of <N>d / <N>h windows and of the free billing month.';

-- Stripe subscriptions as the sidecar last fetched them from Stripe.
CREATE TABLE tollgate.subscriptions (
  stripe_subscription  text PRIMARY KEY,
  stripe_customer      text NOT NULL,
  customer             text,
  status               text NOT NULL,
  price_ids            text[] NOT NULL DEFAULT '{}',
  product_ids          text[] NOT NULL DEFAULT '{}',
  plan                 text,
  current_period_start timestamptz,
  current_period_end   timestamptz,
  cancel_at_period_end boolean NOT NULL DEFAULT false,
  stripe_created       timestamptz,
  synced_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_customer ON tollgate.subscriptions (customer);
CREATE INDEX subscriptions_stripe_customer ON tollgate.subscriptions (stripe_customer);
COMMENT ON COLUMN tollgate.subscriptions.stripe_subscription IS 'Stripe Subscription.id (sub_...).';
COMMENT ON COLUMN tollgate.subscriptions.stripe_customer IS 'Stripe Subscription.customer (cus_...).';
COMMENT ON COLUMN tollgate.subscriptions.customer IS 'The tollgate customer this subscription belongs to; NULL until a mapping is known.';
COMMENT ON COLUMN tollgate.subscriptions.status IS 'Stripe Subscription.status (active, trialing, past_due, canceled, unpaid, incomplete, incomplete_expired, paused).';
COMMENT ON COLUMN tollgate.subscriptions.price_ids IS 'Stripe Subscription.items.data[].price.id.';
COMMENT ON COLUMN tollgate.subscriptions.product_ids IS 'Stripe Subscription.items.data[].price.product.';
COMMENT ON COLUMN tollgate.subscriptions.plan IS 'The tollgate plan these prices or products map to; NULL = no plan names them.';
COMMENT ON COLUMN tollgate.subscriptions.current_period_start IS 'Stripe Subscription.current_period_start, or items.data[].current_period_start on API 2025-03-31 and later.';
COMMENT ON COLUMN tollgate.subscriptions.current_period_end IS 'Stripe Subscription.current_period_end, or items.data[].current_period_end on API 2025-03-31 and later.';
COMMENT ON COLUMN tollgate.subscriptions.cancel_at_period_end IS 'Stripe Subscription.cancel_at_period_end.';
COMMENT ON COLUMN tollgate.subscriptions.stripe_created IS 'Stripe Subscription.created.';

-- Configuration changes bump this version (triggers in sql/config_version.sql).
-- A usage row copies what the hot path needs (plan, quota, ...) with the
-- version it was copied at and the customer's plan_epoch, so one UPDATE of
-- that row can count a call without reading the configuration; a row of an
-- older version or epoch takes the full path once and is refreshed.
CREATE TABLE tollgate.config_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   bigint NOT NULL
);
INSERT INTO tollgate.config_state (version) VALUES (1);

-- Usage of the current window, one row per customer and feature: the hot
-- table. No foreign keys and no CHECK constraints (each costs every UPDATE);
-- the functions keep used >= 0. For rolling windows this row only serializes
-- the customer's calls and carries limit_hit; their counts are hour buckets
-- in usage_windows.
CREATE TABLE tollgate.usage (
  customer       text NOT NULL,
  feature        text NOT NULL,
  window_start   timestamptz NOT NULL,
  window_end     timestamptz NOT NULL,
  used           bigint NOT NULL DEFAULT 0,
  limit_hit      boolean NOT NULL DEFAULT false,
  plan           text NOT NULL,
  quota          bigint,
  soft           boolean NOT NULL DEFAULT false,
  next_mark      bigint,
  config_version bigint NOT NULL DEFAULT 0,
  plan_epoch     bigint NOT NULL DEFAULT 0,
  slotted        boolean NOT NULL DEFAULT false,
  leased         bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (customer, feature)
) WITH (fillfactor = 70); -- room on each page keeps the counter updates HOT
COMMENT ON TABLE tollgate.usage IS 'Usage in the current window per customer and feature; closed windows move to usage_windows.';
COMMENT ON COLUMN tollgate.usage.window_end IS 'End of the window (infinity for lifetime; -infinity for rolling, which never takes the one-statement path).';
COMMENT ON COLUMN tollgate.usage.limit_hit IS 'A limit_reached event was written for this window: later blocked calls only read.';
COMMENT ON COLUMN tollgate.usage.next_mark IS 'The usage at which the next event is due (a notify_at threshold; soft: quota + 1); NULL = none.';
COMMENT ON COLUMN tollgate.usage.config_version IS 'The config_state version that plan, quota, soft and next_mark were copied at; 0 = stale.';
COMMENT ON COLUMN tollgate.usage.plan_epoch IS 'The customer''s plan_epoch when plan and window were copied: a plan change makes the row stale.';
COMMENT ON COLUMN tollgate.usage.slotted IS 'Calls of this customer and feature contended for the row in this window: they count on usage_slots too.';
COMMENT ON COLUMN tollgate.usage.leased IS 'Units of this window leased to usage_slots (the sum of their lease); used + leased stays within the quota and below the next event mark.';

-- A hot customer's extra counters. Every transaction that counts on the
-- usage row holds its lock until its commit is flushed, so one customer's
-- transactions would commit one WAL flush at a time; transactions that find
-- the row taken count on a free slot instead, within the slot's lease, and
-- their commits share a flush. A slot is current while its window, config
-- version and plan epoch are the row's; the full path folds slots back into
-- the row (sql/slots.sql).
CREATE TABLE tollgate.usage_slots (
  customer       text NOT NULL,
  feature        text NOT NULL,
  slot           integer NOT NULL,
  window_start   timestamptz NOT NULL,
  window_end     timestamptz NOT NULL,
  config_version bigint NOT NULL,
  plan_epoch     bigint NOT NULL,
  used           bigint NOT NULL DEFAULT 0,
  lease          bigint NOT NULL DEFAULT 0,
  holder         xid8,
  PRIMARY KEY (customer, feature, slot)
) WITH (fillfactor = 50);
COMMENT ON TABLE tollgate.usage_slots IS 'Extra counters of a contended usage row: the true usage is usage.used plus used of the slots of its window.';
COMMENT ON COLUMN tollgate.usage_slots.lease IS 'Units granted from the usage row (counted in its leased); used never passes lease.';
COMMENT ON COLUMN tollgate.usage_slots.holder IS 'The transaction that last counted on this slot: while it runs it holds the slot.';

-- Usage of closed windows (history, kept), and the hour buckets of rolling windows.
CREATE TABLE tollgate.usage_windows (
  customer     text NOT NULL,
  feature      text NOT NULL,
  window_start timestamptz NOT NULL,
  window_end   timestamptz,
  used         bigint NOT NULL,
  plan         text,
  PRIMARY KEY (customer, feature, window_start)
);

-- The outbox of limit events: the sidecar turns them into upgrade prompts.
CREATE TABLE tollgate.events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- trial_will_end: a Stripe trial ends soon without a payment method (the
  -- sidecar writes it, for the trial prompt; feature is '' and period_start
  -- the trial's start, so it fires once per trial)
  kind         text NOT NULL CHECK (kind IN ('threshold', 'limit_reached', 'trial_will_end')),
  customer     text NOT NULL,
  feature      text NOT NULL,
  plan         text NOT NULL,
  used         bigint NOT NULL,
  quota        bigint,
  threshold    integer NOT NULL,
  period_start timestamptz NOT NULL,
  period_end   timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  -- each kind fires once per customer, feature, window and threshold
  UNIQUE (customer, feature, period_start, kind, threshold)
);
CREATE INDEX events_created_at ON tollgate.events (created_at);
COMMENT ON COLUMN tollgate.events.threshold IS 'The notify_at percent crossed; 100 for limit_reached.';

---- create above / drop below ----

-- Drops every tollgate table with its data. Roles stay (see 001).
DROP SCHEMA tollgate CASCADE;
