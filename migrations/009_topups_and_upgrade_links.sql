-- 009: top-up purchases seen in Stripe; signed upgrade links, their clicks
-- and the conversions they led to; prompt experiments (A/B variants).
--
-- Top-up purchases.
--
-- A paid Checkout Session (payment mode) or a paid invoice with a top-up
-- pack's price (tollgate.topups, 007) is recorded here once per Stripe object
-- (the invoice of a session that has one, so the session and its invoice's
-- events grant once), whether or not tollgate knows whose it is. Known: the
-- pack is granted at once (tollgate.grant keyed by object and pack). Not
-- known yet: the row waits with granted_at NULL, and the packs are granted in
-- the transaction that links its Stripe customer to a customer
-- (set_customer, metadata.tollgate_customer, a completed Checkout Session).
-- A purchase with neither a Stripe customer nor a client_reference_id waits
-- for an operator (docs/stripe.md, tollgate report).
--
-- Operators: rows are small and never deleted by tollgate.
CREATE TABLE tollgate.topup_purchases (
  stripe_object   text PRIMARY KEY,
  stripe_customer text,
  customer        text,
  price_ids       text[] NOT NULL,
  quantities      bigint[] NOT NULL,
  packs           integer NOT NULL DEFAULT 0,
  received_at     timestamptz NOT NULL DEFAULT now(),
  granted_at      timestamptz,
  CHECK ((granted_at IS NULL) = (customer IS NULL))
);
CREATE INDEX topup_purchases_pending ON tollgate.topup_purchases (stripe_customer) WHERE granted_at IS NULL;
COMMENT ON TABLE tollgate.topup_purchases IS
  'Paid Stripe objects (Checkout Sessions in payment mode, invoices) with top-up prices, once each; granted_at NULL '
  '= nobody is known for them yet.';
COMMENT ON COLUMN tollgate.topup_purchases.stripe_object IS 'The invoice (in_...) of the purchase, or the Checkout Session (cs_...) when it has no invoice: the key of its grants.';
COMMENT ON COLUMN tollgate.topup_purchases.stripe_customer IS 'Stripe Customer.id (cus_...) that paid; NULL when the session created none.';
COMMENT ON COLUMN tollgate.topup_purchases.customer IS 'The customer the packs were granted to; NULL while nobody is known.';
COMMENT ON COLUMN tollgate.topup_purchases.packs IS 'How many packs (distinct top-ups) the grant matched.';

-- Signed upgrade links (docs/conversions.md). The sidecar writes the key it
-- derives from TOLLGATE_LINK_SECRET here at start-up
-- (tollgate.configure_upgrade_links), with its public URL and the links'
-- lifetime, so that SQL can mint a link (tollgate.upgrade_link, for the app's
-- 402) with no sidecar round trip. The table is private like every other:
-- the app's role mints through the function and never reads the key. The
-- key is kept as the two HMAC-SHA256 pads (the key XOR 0x36, XOR 0x5c), so a
-- link costs two sha256() calls. No row: links are off (upgrade_link answers
-- NULL and the app shows its static upgrade_url).
CREATE TABLE tollgate.link_keys (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  inner_pad bytea NOT NULL CHECK (pg_catalog.length(inner_pad) = 64),
  outer_pad bytea NOT NULL CHECK (pg_catalog.length(outer_pad) = 64),
  base_url  text NOT NULL,
  ttl       interval NOT NULL,
  set_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tollgate.link_keys IS
  'The key upgrade links are signed with (as HMAC-SHA256 pads), the sidecar''s public URL and the links'' lifetime; '
  'written by the sidecar at start-up. No row: upgrade links are off.';

-- Prompt experiments: a feature's upgrade prompt may have variants, each with
-- a weight and its own message and email template (NULL: the feature's). A
-- customer is assigned one by a hash of customer and feature when first
-- prompted (their first limit_reached event with variants defined), and the
-- assignment is kept: changing the weights or adding a variant never moves a
-- customer already prompted. The variant is stored on the event, the email
-- and the click.
CREATE TABLE tollgate.prompt_variants (
  feature text NOT NULL REFERENCES tollgate.features ON DELETE CASCADE,
  variant text NOT NULL CHECK (variant ~ '^[a-z][a-z0-9_]{0,62}$'),
  weight  integer NOT NULL CHECK (weight >= 0 AND weight <= 1000000),
  message text,
  email   text CHECK (email ~ '^[a-z][a-z0-9_]{0,62}$'),
  PRIMARY KEY (feature, variant)
);
COMMENT ON TABLE tollgate.prompt_variants IS
  'Variants of a feature''s upgrade prompt (tollgate.yaml upgrade_prompt.variants): the share of new customers '
  'each gets (weight), and its message and email template (NULL = the feature''s). The variant named control is '
  'the one the others are compared with.';

CREATE TABLE tollgate.variant_assignments (
  customer    text NOT NULL,
  feature     text NOT NULL,
  variant     text NOT NULL,
  assigned_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer, feature)
);
COMMENT ON TABLE tollgate.variant_assignments IS
  'The variant each customer was shown for a feature, from their first prompt on; kept when weights change.';

ALTER TABLE tollgate.events ADD COLUMN variant text;
ALTER TABLE tollgate.emails ADD COLUMN variant text;
COMMENT ON COLUMN tollgate.events.variant IS 'The prompt variant the customer is assigned for a limit_reached event; NULL = no experiment.';
COMMENT ON COLUMN tollgate.emails.variant IS 'The prompt variant of the email (its event''s); NULL = no experiment.';

-- A click of an upgrade link (GET /upgrade/<token> of the sidecar), once per
-- token and minute, and where it led: a Stripe Checkout Session, the Billing
-- Portal (a paying customer), or the static upgrade_url (without Stripe, or
-- when Checkout failed). A Checkout Session completed from a click makes the
-- conversion it leads to attributed to that click's prompt and variant.
CREATE TABLE tollgate.link_clicks (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  token            text NOT NULL,
  minute           timestamptz NOT NULL,
  customer         text NOT NULL,
  feature          text NOT NULL,
  event_id         bigint REFERENCES tollgate.events ON DELETE SET NULL,
  email_id         bigint REFERENCES tollgate.emails ON DELETE SET NULL,
  variant          text,
  target           text CHECK (target IN ('checkout', 'portal', 'fallback')),
  checkout_session text UNIQUE,
  completed_at     timestamptz,
  clicked_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (token, minute)
);
CREATE INDEX link_clicks_customer ON tollgate.link_clicks (customer, feature, clicked_at);
CREATE INDEX link_clicks_clicked_at ON tollgate.link_clicks (clicked_at);
COMMENT ON TABLE tollgate.link_clicks IS 'Clicks of signed upgrade links, once per link and minute, and where each led.';
COMMENT ON COLUMN tollgate.link_clicks.token IS 'The link''s signature (hex): one link''s clicks share it.';
COMMENT ON COLUMN tollgate.link_clicks.minute IS 'The minute of the click: a link counts one click per minute.';
COMMENT ON COLUMN tollgate.link_clicks.event_id IS 'The limit_reached event the link came from (the 402''s, or the email''s).';
COMMENT ON COLUMN tollgate.link_clicks.email_id IS 'The email the link was in; NULL for a 402''s link.';
COMMENT ON COLUMN tollgate.link_clicks.target IS 'checkout: a Checkout Session was created; portal: the Billing Portal (a paying customer); fallback: the static upgrade_url.';
COMMENT ON COLUMN tollgate.link_clicks.checkout_session IS 'Stripe Checkout Session.id (cs_...) created for the click.';
COMMENT ON COLUMN tollgate.link_clicks.completed_at IS 'When the sidecar saw that Checkout Session completed.';

-- Conversions attributed to a click (exactly: its Checkout Session was
-- completed) name the click, and every attributed conversion its variant.
ALTER TABLE tollgate.plan_changes
  ADD COLUMN click_id bigint REFERENCES tollgate.link_clicks ON DELETE SET NULL,
  ADD COLUMN variant  text;
CREATE INDEX plan_changes_click ON tollgate.plan_changes (click_id) WHERE click_id IS NOT NULL;
COMMENT ON COLUMN tollgate.plan_changes.click_id IS
  'The upgrade-link click whose Checkout Session led to this conversion (attribution "clicked"); NULL = attributed by time, or organic.';
COMMENT ON COLUMN tollgate.plan_changes.variant IS 'The prompt variant of the prompt this conversion is attributed to.';

CREATE OR REPLACE VIEW tollgate.conversions AS
  SELECT id, customer, from_plan, to_plan, changed_at AS converted_at, email_id, event_id, feature, prompted_at,
         click_id, variant
    FROM tollgate.plan_changes
   WHERE kind = 'conversion';
COMMENT ON VIEW tollgate.conversions IS
  'Free -> paid conversions; feature and prompted_at name the upgrade prompt each is attributed to (NULL = organic), '
  'click_id the upgrade-link click it came from (exact attribution), variant the prompt''s variant.';

---- create above / drop below ----

DROP VIEW tollgate.conversions;
CREATE VIEW tollgate.conversions AS
  SELECT id, customer, from_plan, to_plan, changed_at AS converted_at, email_id, event_id, feature, prompted_at
    FROM tollgate.plan_changes
   WHERE kind = 'conversion';
COMMENT ON VIEW tollgate.conversions IS
  'Free -> paid conversions; feature and prompted_at name the upgrade prompt each is attributed to (NULL = organic).';
DROP INDEX tollgate.plan_changes_click;
ALTER TABLE tollgate.plan_changes DROP COLUMN click_id, DROP COLUMN variant;
DROP TABLE tollgate.link_clicks;
ALTER TABLE tollgate.emails DROP COLUMN variant;
ALTER TABLE tollgate.events DROP COLUMN variant;
DROP TABLE tollgate.variant_assignments;
DROP TABLE tollgate.prompt_variants;
DROP TABLE tollgate.link_keys;
DROP TABLE tollgate.topup_purchases;
