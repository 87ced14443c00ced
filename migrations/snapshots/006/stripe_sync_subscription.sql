CREATE OR REPLACE FUNCTION tollgate.sync_subscription(
  stripe_subscription text,
  stripe_customer text,
  status text,
  price_ids text[],
  product_ids text[],
  current_period_start timestamptz,
  current_period_end timestamptz,
  cancel_at_period_end boolean,
  stripe_created timestamptz,
  fetched_at timestamptz,
  tollgate_customer text DEFAULT NULL,
  OUT customer text,
  OUT plan text,
  OUT applied boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_sub text := $1;
  v_stripe text := $2;
  v_status text := $3;
  v_prices text[] := coalesce($4, '{}');
  v_products text[] := coalesce($5, '{}');
  v_start timestamptz := $6;
  v_end timestamptz := $7;
  v_cancel boolean := coalesce($8, false);
  v_created timestamptz := $9;
  -- a replica whose clock runs ahead must not make its fetches win forever
  -- (least ignores NULL: a NULL fetched_at is rejected below)
  v_fetched timestamptz := least($10, clock_timestamp());
  v_meta text := nullif($11, '');
  v_owner text;
BEGIN
  IF v_sub IS NULL OR v_sub !~ '^sub_[A-Za-z0-9_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_subscription %L is not a Stripe subscription id', v_sub),
      HINT = 'Stripe subscription ids look like sub_1MowQVLkdIwHu7ixeRlqHVzs.';
  END IF;
  IF v_stripe IS NULL OR v_stripe !~ '^cus_[A-Za-z0-9]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_customer %L is not a Stripe customer id', v_stripe),
      HINT = 'Stripe customer ids look like cus_NffrFeUfNV2Hib.';
  END IF;
  IF v_status IS NULL OR v_status !~ '^[a-z_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('status %L is not a Stripe subscription status', v_status);
  END IF;
  IF array_position(v_prices, NULL) IS NOT NULL OR array_position(v_products, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'price_ids and product_ids must not contain NULL';
  END IF;
  -- Stripe timestamps are never 0: a period at the epoch is a missing field
  -- read as 0 (API 2025-03-31 moved the periods to the subscription items)
  IF v_start <= 'epoch' OR v_end <= 'epoch' OR v_created <= 'epoch' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'a Stripe timestamp is at or before 1970-01-01',
      HINT = 'Pass NULL for a period Stripe did not give; read periods from the subscription items on newer APIs.';
  END IF;
  IF $10 IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'fetched_at must not be NULL',
      HINT = 'Pass the time the fetch from Stripe started.';
  END IF;

  -- An older fetch never overwrites a newer one: the fetch that started last
  -- saw every change made before it started. The row lock makes concurrent
  -- syncs of one subscription take turns; the upsert's WHERE covers two
  -- first inserts racing.
  SELECT s.customer, s.plan INTO customer, plan
    FROM tollgate.subscriptions s
   WHERE s.stripe_subscription = v_sub AND s.synced_at > v_fetched
     FOR UPDATE;
  IF FOUND THEN
    applied := false;
    RETURN;
  END IF;

  IF v_meta IS NOT NULL THEN
    PERFORM tollgate._link_stripe_customer(v_stripe, v_meta, 'metadata', NULL);
  END IF;
  v_owner := tollgate._stripe_owner(v_stripe);

  INSERT INTO tollgate.subscriptions AS s (
    stripe_subscription, stripe_customer, customer, status, price_ids, product_ids,
    current_period_start, current_period_end, cancel_at_period_end, stripe_created, synced_at)
  VALUES (v_sub, v_stripe, v_owner, v_status, v_prices, v_products, v_start, v_end, v_cancel, v_created, v_fetched)
  ON CONFLICT ON CONSTRAINT subscriptions_pkey DO UPDATE
    SET stripe_customer = EXCLUDED.stripe_customer,
        customer = EXCLUDED.customer,
        status = EXCLUDED.status,
        price_ids = EXCLUDED.price_ids,
        product_ids = EXCLUDED.product_ids,
        current_period_start = EXCLUDED.current_period_start,
        current_period_end = EXCLUDED.current_period_end,
        cancel_at_period_end = EXCLUDED.cancel_at_period_end,
        stripe_created = EXCLUDED.stripe_created,
        synced_at = EXCLUDED.synced_at
  WHERE s.synced_at <= EXCLUDED.synced_at
  RETURNING s.customer, s.plan INTO customer, plan;
  applied := FOUND;
  IF NOT applied THEN
    SELECT s.customer, s.plan INTO customer, plan
      FROM tollgate.subscriptions s WHERE s.stripe_subscription = v_sub;
  END IF;
END
$$;
COMMENT ON FUNCTION tollgate.sync_subscription(text, text, text, text[], text[], timestamptz, timestamptz, boolean, timestamptz, timestamptz, text) IS
  'Sidecar: stores a subscription as just fetched from Stripe (Subscription.id, .customer, .status, '
  'items.data[].price.id and .product, current_period_start/end from the subscription or, on API 2025-03-31 and '
  'later, its items; NULL when Stripe gives none, .cancel_at_period_end, .created). fetched_at is when the fetch '
  'started: a fetch older than the stored one changes nothing (applied = false). tollgate_customer is the Stripe '
  'customer''s metadata.tollgate_customer, recorded as a link. The plan comes from the prices and products, the '
  'customer from the links (set_customer first, then metadata, then Checkout); the customer''s plan is recomputed. '
  'Returns the customer (NULL = nobody yet: linked when a mapping appears) and plan (NULL = no plan names these '
  'prices). Errors: TG422 for malformed ids, NULL fetched_at, or a timestamp at the epoch.';

GRANT EXECUTE ON FUNCTION
  tollgate.sync_subscription(text, text, text, text[], text[], timestamptz, timestamptz, boolean, timestamptz, timestamptz, text)
TO tollgate_sidecar;
