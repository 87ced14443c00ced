-- 009: top-up purchases seen in Stripe.
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

---- create above / drop below ----

DROP TABLE tollgate.topup_purchases;
