-- Customer mapping for Stripe sync. A Stripe customer belongs to a tollgate
-- customer by, in this order of precedence:
--   1. the app's link, tollgate.set_customer(customer, email, stripe_customer)
--      (customers.stripe_customer);
--   2. the Stripe customer's metadata.tollgate_customer (stripe_links, 'metadata');
--   3. the client_reference_id of a completed Checkout Session (stripe_links,
--      'checkout').
-- A subscription whose Stripe customer belongs to nobody is stored with
-- customer NULL and linked as soon as one of these appears.

-- Argument checks shared by the sidecar's Stripe functions: every bad value
-- is TG422 before anything is read or written (a NULL, an empty or over-long
-- text, a malformed Stripe id). Messages show at most 64 characters of the
-- value. Stripe ids and customer keys are at most 255 characters.
CREATE OR REPLACE FUNCTION tollgate._check_stripe_id(p_value text, p_what text, p_prefix text, p_hint text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF p_value IS NULL OR pg_catalog.length(p_value) > 255
     OR p_value !~ ('^' || p_prefix || '_[A-Za-z0-9_]+$') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('%s %s is not a Stripe %s id', p_what,
                                  coalesce(pg_catalog.quote_literal(pg_catalog.left(p_value, 64)), 'NULL'), p_prefix),
      HINT = p_hint || ' (at most 255 characters)';
  END IF;
END
$$;

-- A timestamp from Stripe: NULL when allowed, otherwise after the epoch (a
-- Stripe timestamp is never 0: the epoch is a missing field read as 0) and
-- finite.
CREATE OR REPLACE FUNCTION tollgate._check_stripe_time(p_value timestamptz, p_what text, p_nullable boolean)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF p_value IS NULL AND p_nullable THEN
    RETURN;
  END IF;
  IF p_value IS NULL OR NOT pg_catalog.isfinite(p_value) OR p_value <= 'epoch'::timestamptz THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('%s must be a finite time after 1970-01-01, not %s', p_what,
                                  coalesce(p_value::text, 'NULL')),
      HINT = 'Pass NULL for a time Stripe did not give; read periods from the subscription items on newer APIs.';
  END IF;
END
$$;

-- The tollgate customer a Stripe customer belongs to; NULL = nobody yet.
-- (PL/pgSQL, not SQL: on a Citus cluster a SQL function's parameters do not
-- reach the planner, which then fails to plan this.)
CREATE OR REPLACE FUNCTION tollgate._stripe_owner(p_stripe_customer text)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  RETURN coalesce(
    (SELECT c.customer FROM tollgate.customers c WHERE c.stripe_customer = p_stripe_customer),
    (SELECT l.customer FROM tollgate.stripe_links l WHERE l.stripe_customer = p_stripe_customer));
END
$$;

-- Records a link found in Stripe (source 'metadata' or 'checkout'; a metadata
-- link replaces a checkout link, never the reverse), registers the customer
-- when the link decides the owner, and moves the Stripe customer's stored
-- subscriptions to the owner (the subscriptions trigger recomputes plans), and
-- grants its top-up purchases that waited for an owner.
-- Returns the owner, which is the app's own link when there is one.
CREATE OR REPLACE FUNCTION tollgate._link_stripe_customer(
  p_stripe_customer text, p_customer text, p_source text, p_source_id text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
  v_owner text;
BEGIN
  INSERT INTO tollgate.stripe_links AS l (stripe_customer, customer, source, source_id)
  VALUES (p_stripe_customer, p_customer, p_source, p_source_id)
  ON CONFLICT ON CONSTRAINT stripe_links_pkey DO UPDATE
    SET customer = EXCLUDED.customer, source = EXCLUDED.source, source_id = EXCLUDED.source_id, linked_at = EXCLUDED.linked_at
  WHERE (l.customer, l.source) IS DISTINCT FROM (EXCLUDED.customer, EXCLUDED.source)
    AND (EXCLUDED.source = 'metadata' OR l.source = 'checkout');
  v_owner := tollgate._stripe_owner(p_stripe_customer);
  IF v_owner = p_customer THEN
    -- first sight of this customer: register it (on the default plan until
    -- the relink below gives it its subscriptions' plan)
    INSERT INTO tollgate.customers AS c (customer) VALUES (p_customer)
    ON CONFLICT ON CONSTRAINT customers_pkey DO NOTHING;
  END IF;
  UPDATE tollgate.subscriptions s SET customer = v_owner
   WHERE s.stripe_customer = p_stripe_customer AND s.customer IS DISTINCT FROM v_owner;
  -- top-up purchases that waited for this Stripe customer's owner
  PERFORM tollgate._grant_pending_topups(p_stripe_customer);
  RETURN v_owner;
END
$$;

CREATE OR REPLACE FUNCTION tollgate.link_checkout_session(
  stripe_checkout_session text, stripe_customer text, client_reference_id text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_session text := $1;
  v_stripe text := $2;
  v_customer text := $3;
BEGIN
  PERFORM tollgate._check_stripe_id(v_session, 'stripe_checkout_session', 'cs',
                                    'Checkout Session ids look like cs_test_a1b2c3');
  PERFORM tollgate._check_stripe_id(v_stripe, 'stripe_customer', 'cus', 'Stripe customer ids look like cus_NffrFeUfNV2Hib');
  PERFORM tollgate._check_text('client_reference_id', v_customer, 255);
  RETURN tollgate._link_stripe_customer(v_stripe, v_customer, 'checkout', v_session);
END
$$;
COMMENT ON FUNCTION tollgate.link_checkout_session(text, text, text) IS
  'Sidecar: records that a completed Checkout Session (stripe_checkout_session) with client_reference_id was paid '
  'by stripe_customer, so that Stripe customer''s subscriptions belong to that customer unless the app''s own link '
  '(set_customer) or the Stripe customer''s metadata.tollgate_customer says otherwise. Registers the customer when '
  'new. Returns the customer the Stripe customer now belongs to. Errors: TG422 for a NULL, empty, malformed or '
  'over-long (255) id or client_reference_id.';

GRANT EXECUTE ON FUNCTION tollgate.link_checkout_session(text, text, text) TO tollgate_sidecar;
