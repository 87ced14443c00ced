-- Top-up packs bought in Stripe (the sidecar's side of tollgate.topups): a
-- paid Checkout Session in payment mode, or a paid invoice, whose line items
-- include a pack's price. Each purchase is recorded once per Stripe object
-- (tollgate.topup_purchases) and granted to the customer its Stripe customer
-- belongs to (the same mapping as subscriptions: the app's set_customer
-- link, metadata.tollgate_customer, a Checkout Session's client_reference_id),
-- or, without a Stripe customer, to the session's client_reference_id. A
-- purchase nobody is known for waits, and is granted in the transaction that
-- links its Stripe customer (_grant_pending_topups).

-- The Stripe prices of the top-up packs: the sidecar re-fetches invoices for
-- their line items only while there are some.
CREATE OR REPLACE FUNCTION tollgate.topup_prices()
RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  SELECT coalesce(pg_catalog.array_agg(t.stripe_price ORDER BY t.stripe_price), '{}') FROM tollgate.topups t
$$;
COMMENT ON FUNCTION tollgate.topup_prices() IS
  'Sidecar: the Stripe prices of the top-up packs (tollgate.yaml topups:), sorted; empty when none are defined.';

-- Grants a recorded purchase to p_customer (once: the grants are keyed by the
-- object and the pack) and marks it granted.
CREATE OR REPLACE FUNCTION tollgate._grant_topup_purchase(p_object text, p_customer text)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  p tollgate.topup_purchases;
  v_packs integer;
BEGIN
  SELECT * INTO p FROM tollgate.topup_purchases tp WHERE tp.stripe_object = p_object FOR UPDATE;
  IF NOT FOUND OR p.granted_at IS NOT NULL THEN
    RETURN 0;
  END IF;
  v_packs := tollgate.record_topup(p_object, p_customer, p.price_ids, p.quantities);
  UPDATE tollgate.topup_purchases tp SET customer = p_customer, packs = v_packs, granted_at = now()
   WHERE tp.stripe_object = p_object;
  RETURN v_packs;
END
$$;

-- Grants the purchases of a Stripe customer that waited for its owner, now
-- that one may be known. Returns the packs granted.
CREATE OR REPLACE FUNCTION tollgate._grant_pending_topups(p_stripe_customer text)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  v_owner text;
  v_object text;
  v_packs integer := 0;
BEGIN
  IF p_stripe_customer IS NULL
     OR NOT EXISTS (SELECT FROM tollgate.topup_purchases tp
                     WHERE tp.stripe_customer = p_stripe_customer AND tp.granted_at IS NULL) THEN
    RETURN 0;
  END IF;
  v_owner := tollgate._stripe_owner(p_stripe_customer);
  IF v_owner IS NULL THEN
    RETURN 0;
  END IF;
  FOR v_object IN SELECT tp.stripe_object FROM tollgate.topup_purchases tp
                   WHERE tp.stripe_customer = p_stripe_customer AND tp.granted_at IS NULL
                   ORDER BY tp.received_at, tp.stripe_object LOOP
    v_packs := v_packs + tollgate._grant_topup_purchase(v_object, v_owner);
  END LOOP;
  RETURN v_packs;
END
$$;

CREATE OR REPLACE FUNCTION tollgate.record_stripe_topup(
  stripe_object text, stripe_customer text, tollgate_customer text, client_reference_id text,
  price_ids text[], quantities bigint[],
  OUT customer text, OUT matched integer, OUT granted integer, OUT recorded boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_object text := $1;
  v_stripe text := $2;
  v_meta text := nullif($3, '');
  v_ref text := nullif($4, '');
  v_prices text[] := $5;
  v_quantities bigint[] := $6;
  v_customer text;
BEGIN
  IF v_object IS NULL OR pg_catalog.length(v_object) > 190 OR v_object !~ '^(in|cs)_[A-Za-z0-9_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('stripe_object %s is not a Stripe invoice (in_...) or Checkout Session (cs_...) id of at most 190 characters',
                                  coalesce(pg_catalog.quote_literal(pg_catalog.left(v_object, 64)), 'NULL'));
  END IF;
  IF v_stripe IS NOT NULL THEN
    PERFORM tollgate._check_stripe_id(v_stripe, 'stripe_customer', 'cus', 'Stripe customer ids look like cus_NffrFeUfNV2Hib');
  END IF;
  PERFORM tollgate._check_text(v_meta, 'tollgate_customer', 255, true);
  PERFORM tollgate._check_text(v_ref, 'client_reference_id', 255, true);
  IF v_prices IS NULL OR v_quantities IS NULL OR pg_catalog.cardinality(v_prices) <> pg_catalog.cardinality(v_quantities)
     OR pg_catalog.cardinality(v_prices) > 1000 OR coalesce(pg_catalog.array_ndims(v_prices), 1) <> 1
     OR coalesce(pg_catalog.array_ndims(v_quantities), 1) <> 1
     OR EXISTS (SELECT FROM pg_catalog.unnest(v_prices) AS x(id) WHERE x.id IS NULL OR x.id = '' OR pg_catalog.length(x.id) > 255)
     OR EXISTS (SELECT FROM pg_catalog.unnest(v_quantities) AS q(n) WHERE q.n IS NULL OR q.n <= 0 OR q.n > 1000000) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'price_ids and quantities must be lists of the same length (at most 1000): ids of 1 to 255 characters, '
                'quantities from 1 to 1000000';
  END IF;

  SELECT count(DISTINCT t.topup)::integer INTO matched
    FROM pg_catalog.unnest(v_prices) AS l(price) JOIN tollgate.topups t ON t.stripe_price = l.price;
  granted := 0;
  recorded := false;
  IF matched = 0 THEN
    RETURN; -- no pack among its prices: nothing to record
  END IF;

  IF v_stripe IS NOT NULL AND v_meta IS NOT NULL THEN
    PERFORM tollgate._link_stripe_customer(v_stripe, v_meta, 'metadata', NULL);
  END IF;
  v_customer := coalesce(tollgate._stripe_owner(v_stripe), v_ref);
  INSERT INTO tollgate.topup_purchases AS tp (stripe_object, stripe_customer, price_ids, quantities)
  VALUES (v_object, v_stripe, v_prices, v_quantities)
  ON CONFLICT ON CONSTRAINT topup_purchases_pkey DO NOTHING;
  recorded := FOUND;
  IF v_customer IS NOT NULL THEN
    granted := tollgate._grant_topup_purchase(v_object, v_customer);
  END IF;
  -- the customer it went to, when it went (also on a redelivery)
  SELECT tp.customer INTO v_customer FROM tollgate.topup_purchases tp WHERE tp.stripe_object = v_object;
  customer := v_customer;
END
$$;
COMMENT ON FUNCTION tollgate.record_stripe_topup(text, text, text, text, text[], bigint[]) IS
  'Sidecar: records a paid Stripe object (an invoice, or a Checkout Session in payment mode without one) whose '
  'line items (price_ids with their quantities) include top-up prices, once per object, and grants the packs '
  '(tollgate.record_topup) to the customer stripe_customer belongs to (the app''s set_customer link, '
  'tollgate_customer = the Stripe customer''s metadata.tollgate_customer, recorded as a link, or a Checkout '
  'Session''s client_reference_id), or without a Stripe customer to client_reference_id. Returns that customer '
  '(NULL: nobody is known yet; the purchase waits and is granted when its Stripe customer is linked), how many '
  'packs its prices matched (0: no pack, nothing recorded), how many were granted by this call (0 on a '
  'redelivery) and whether this call recorded the purchase (false: it was recorded before). Errors: TG422 for a malformed id or bad lists.';

GRANT EXECUTE ON FUNCTION tollgate.record_stripe_topup(text, text, text, text, text[], bigint[]),
  tollgate.topup_prices() TO tollgate_sidecar;
