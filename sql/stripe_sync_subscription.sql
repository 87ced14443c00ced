-- The signature before stripe_account, pause_collection, trials and the
-- payment method were stored: a reinstall over it must not leave an overload.
DROP FUNCTION IF EXISTS tollgate.sync_subscription(
  text, text, text, text[], text[], timestamptz, timestamptz, boolean, timestamptz, timestamptz, text);

-- A word of Stripe's vocabulary (a status, a pause behavior): lower-case
-- letters and _, at most 64 characters; NULL only when p_nullable.
CREATE OR REPLACE FUNCTION tollgate._check_stripe_word(p_what text, p_value text, p_nullable boolean, p_hint text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF p_value IS NULL AND p_nullable THEN
    RETURN;
  END IF;
  IF p_value IS NULL OR pg_catalog.length(p_value) > 64 OR p_value !~ '^[a-z_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('%s %s is not one of Stripe''s', p_what,
                                  coalesce(pg_catalog.quote_literal(pg_catalog.left(p_value, 64)), 'NULL')),
      HINT = p_hint || '.';
  END IF;
END
$$;

-- A list of Stripe ids (prices, products): at most 1000 ids of 1 to 255
-- characters, one dimension, no NULL.
CREATE OR REPLACE FUNCTION tollgate._check_stripe_ids(p_what text, p_ids text[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF pg_catalog.cardinality(p_ids) > 1000 OR coalesce(pg_catalog.array_ndims(p_ids), 1) <> 1
     OR EXISTS (SELECT FROM pg_catalog.unnest(p_ids) AS x(id) WHERE x.id IS NULL OR x.id = '' OR pg_catalog.length(x.id) > 255) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('%s is a list of at most 1000 ids of 1 to 255 characters, without NULL', p_what);
  END IF;
END
$$;

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
  stripe_account text DEFAULT NULL,
  pause_collection text DEFAULT NULL,
  pause_resumes_at timestamptz DEFAULT NULL,
  trial_start timestamptz DEFAULT NULL,
  trial_end timestamptz DEFAULT NULL,
  has_payment_method boolean DEFAULT NULL,
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
  v_fetched timestamptz := least($10, pg_catalog.clock_timestamp());
  v_meta text := nullif($11, '');
  v_account text := $12;
  v_pause text := $13;
  v_resumes timestamptz := $14;
  v_trial_start timestamptz := $15;
  v_trial_end timestamptz := $16;
  v_payment boolean := $17;
  v_owner text;
BEGIN
  PERFORM tollgate._check_stripe_id(v_sub, 'stripe_subscription', 'sub',
                                    'Stripe subscription ids look like sub_1MowQVLkdIwHu7ixeRlqHVzs');
  PERFORM tollgate._check_stripe_id(v_stripe, 'stripe_customer', 'cus', 'Stripe customer ids look like cus_NffrFeUfNV2Hib');
  PERFORM tollgate._check_stripe_word('status', v_status, false, 'active, trialing, past_due, canceled, ...');
  PERFORM tollgate._check_stripe_ids('price_ids', v_prices);
  PERFORM tollgate._check_stripe_ids('product_ids', v_products);
  -- Stripe timestamps are never 0: a period at the epoch is a missing field
  -- read as 0 (API 2025-03-31 moved the periods to the subscription items)
  PERFORM tollgate._check_stripe_time(v_start, 'current_period_start', true);
  PERFORM tollgate._check_stripe_time(v_end, 'current_period_end', true);
  PERFORM tollgate._check_stripe_time(v_created, 'stripe_created', true);
  PERFORM tollgate._check_stripe_time(v_resumes, 'pause_resumes_at', true);
  PERFORM tollgate._check_stripe_time(v_trial_start, 'trial_start', true);
  PERFORM tollgate._check_stripe_time(v_trial_end, 'trial_end', true);
  IF $10 IS NULL OR NOT pg_catalog.isfinite($10) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'fetched_at must be a finite time, not NULL or infinity',
      HINT = 'Pass the time the fetch from Stripe started.';
  END IF;
  PERFORM tollgate._check_text('tollgate_customer', v_meta, 255, true);
  IF v_account IS NOT NULL THEN
    PERFORM tollgate._check_stripe_id(v_account, 'stripe_account', 'acct', 'Connect account ids look like acct_1032D82eZvKYlo2C');
  END IF;
  PERFORM tollgate._check_stripe_word('pause_collection', v_pause, true,
                                      'void, keep_as_draft or mark_uncollectible; NULL when collection is not paused');

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
    current_period_start, current_period_end, cancel_at_period_end, stripe_created, synced_at,
    stripe_account, pause_collection, pause_resumes_at, trial_start, trial_end, has_payment_method, gone_at)
  VALUES (v_sub, v_stripe, v_owner, v_status, v_prices, v_products, v_start, v_end, v_cancel, v_created, v_fetched,
          v_account, v_pause, CASE WHEN v_pause IS NOT NULL THEN v_resumes END, v_trial_start, v_trial_end, v_payment, NULL)
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
        synced_at = EXCLUDED.synced_at,
        stripe_account = EXCLUDED.stripe_account,
        pause_collection = EXCLUDED.pause_collection,
        pause_resumes_at = EXCLUDED.pause_resumes_at,
        trial_start = EXCLUDED.trial_start,
        trial_end = EXCLUDED.trial_end,
        has_payment_method = EXCLUDED.has_payment_method,
        gone_at = NULL
  WHERE s.synced_at <= EXCLUDED.synced_at
  RETURNING s.customer, s.plan INTO customer, plan;
  applied := FOUND;
  IF NOT applied THEN
    SELECT s.customer, s.plan INTO customer, plan
      FROM tollgate.subscriptions s WHERE s.stripe_subscription = v_sub;
  END IF;
END
$$;
COMMENT ON FUNCTION tollgate.sync_subscription(text, text, text, text[], text[], timestamptz, timestamptz, boolean, timestamptz, timestamptz, text, text, text, timestamptz, timestamptz, timestamptz, boolean) IS
  'Sidecar: stores a subscription as just fetched from Stripe (Subscription.id, .customer, .status, '
  'items.data[].price.id and .product, current_period_start/end from the subscription or, on API 2025-03-31 and '
  'later, its items; NULL when Stripe gives none, .cancel_at_period_end, .created). fetched_at is when the fetch '
  'started: a fetch older than the stored one changes nothing (applied = false). tollgate_customer is the Stripe '
  'customer''s metadata.tollgate_customer, recorded as a link. stripe_account is the connected account (Connect) '
  'it was fetched from; pause_collection and pause_resumes_at are .pause_collection.behavior and .resumes_at '
  '(NULL when collection is not paused); trial_start and trial_end are the trial''s; has_payment_method says '
  'whether the subscription or its customer has a default payment method. A subscription marked gone '
  '(stripe_subscription_gone) is known again. The plan comes from the prices and products, the customer from '
  'the links (set_customer first, then metadata, then Checkout); the customer''s plan is recomputed. Returns the '
  'customer (NULL = nobody yet: linked when a mapping appears) and plan (NULL = no plan names these prices). '
  'Errors: TG422 for a NULL, malformed or over-long (255) id, status or tollgate_customer, more than 1000 prices '
  'or products, a NULL or infinite fetched_at, or a timestamp at the epoch or infinite.';

CREATE OR REPLACE FUNCTION tollgate.stripe_subscription_gone(stripe_subscription text, fetched_at timestamptz,
  OUT customer text, OUT applied boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_sub text := $1;
  v_fetched timestamptz := least($2, pg_catalog.clock_timestamp());
BEGIN
  PERFORM tollgate._check_stripe_id(v_sub, 'stripe_subscription', 'sub',
                                    'Stripe subscription ids look like sub_1MowQVLkdIwHu7ixeRlqHVzs');
  IF $2 IS NULL OR NOT pg_catalog.isfinite($2) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'fetched_at must be a finite time, not NULL or infinity',
      HINT = 'Pass the time the fetch from Stripe started.';
  END IF;
  -- as sync_subscription: a fetch that started before the stored one loses
  UPDATE tollgate.subscriptions s
     SET gone_at = coalesce(s.gone_at, v_fetched), synced_at = v_fetched
   WHERE s.stripe_subscription = v_sub AND s.synced_at <= v_fetched
  RETURNING s.customer INTO customer;
  applied := FOUND;
END
$$;
COMMENT ON FUNCTION tollgate.stripe_subscription_gone(text, timestamptz) IS
  'Sidecar: records that Stripe answered 404 (resource_missing) for a stored subscription, in a fetch that '
  'started at fetched_at: it gives no plan from now on (its customer''s plan is recomputed), until a later fetch '
  'finds it again. applied is false when the subscription is not stored or a later fetch was stored already. '
  'Returns the customer it belonged to. Errors: TG422 for a NULL, malformed or over-long id, or a NULL or '
  'infinite fetched_at.';

CREATE OR REPLACE FUNCTION tollgate.stripe_customer_subscriptions(stripe_customer text)
RETURNS TABLE (stripe_subscription text, stripe_account text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  PERFORM tollgate._check_stripe_id($1, 'stripe_customer', 'cus', 'Stripe customer ids look like cus_NffrFeUfNV2Hib');
  RETURN QUERY
  SELECT s.stripe_subscription, s.stripe_account
    FROM tollgate.subscriptions s
   WHERE s.stripe_customer = $1 AND s.gone_at IS NULL
     AND s.status NOT IN ('canceled', 'incomplete_expired')
   ORDER BY s.stripe_subscription;
END
$$;
COMMENT ON FUNCTION tollgate.stripe_customer_subscriptions(text) IS
  'Sidecar: the stored subscriptions of a Stripe customer that may still give a plan (not canceled, '
  'incomplete_expired or gone), with their Connect account: what a customer.deleted event re-fetches. Errors: '
  'TG422 for a NULL, malformed or over-long id.';

CREATE OR REPLACE FUNCTION tollgate.stripe_due_resumes(max_subscriptions integer DEFAULT 100)
RETURNS TABLE (stripe_subscription text, stripe_account text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  IF $1 IS NULL OR $1 < 1 OR $1 > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('max_subscriptions must be from 1 to 10000, not %s', coalesce($1::text, 'NULL'));
  END IF;
  RETURN QUERY
  SELECT s.stripe_subscription, s.stripe_account
    FROM tollgate.subscriptions s
   WHERE s.pause_collection IS NOT NULL AND s.pause_resumes_at IS NOT NULL AND s.gone_at IS NULL
     AND s.pause_resumes_at <= pg_catalog.now()
   ORDER BY s.pause_resumes_at, s.stripe_subscription
   LIMIT $1;
END
$$;
COMMENT ON FUNCTION tollgate.stripe_due_resumes(integer) IS
  'Sidecar: up to max_subscriptions stored subscriptions whose paused collection was due to resume '
  '(pause_collection.resumes_at has passed) but that are still stored as paused: the sidecar re-fetches them. '
  'Errors: TG422 for a max_subscriptions that is NULL or outside 1 to 10000.';

CREATE OR REPLACE FUNCTION tollgate.trial_will_end(stripe_subscription text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_sub text := $1;
  v_template text;
  v_id bigint;
BEGIN
  PERFORM tollgate._check_stripe_id(v_sub, 'stripe_subscription', 'sub',
                                    'Stripe subscription ids look like sub_1MowQVLkdIwHu7ixeRlqHVzs');
  SELECT st.value INTO v_template FROM tollgate.settings st WHERE st.key = 'trial_prompt';
  IF coalesce(v_template, '') = '' THEN
    RETURN false;
  END IF;
  -- once per trial: the event's key is (customer, '', trial_start, kind, 100)
  INSERT INTO tollgate.events AS e
    (kind, customer, feature, plan, used, quota, threshold, period_start, period_end)
  SELECT 'trial_will_end', s.customer, '', s.plan, 0, NULL, 100, s.trial_start, s.trial_end
    FROM tollgate.subscriptions s
   WHERE s.stripe_subscription = v_sub
     AND s.status = 'trialing' AND s.gone_at IS NULL
     AND s.customer IS NOT NULL AND s.plan IS NOT NULL
     AND s.has_payment_method IS FALSE
     AND s.trial_start IS NOT NULL AND s.trial_end > pg_catalog.now()
  ON CONFLICT (customer, feature, period_start, kind, threshold) DO NOTHING
  RETURNING e.id INTO v_id;
  IF v_id IS NULL THEN
    RETURN false;
  END IF;
  PERFORM pg_catalog.pg_notify('tollgate_events', v_id::text);
  RETURN true;
END
$$;
COMMENT ON FUNCTION tollgate.trial_will_end(text) IS
  'Sidecar: on customer.subscription.trial_will_end, after storing the re-fetched subscription: when the setting '
  'trial_prompt names an email template and the stored subscription is trialing, belongs to a customer, means a plan, has no '
  'payment method and its trial ends in the future, writes a trial_will_end event (feature '''', period_start the '
  'trial''s start, period_end its end) that the outbox turns into the trial prompt, once per trial, and wakes the '
  'sidecar. Returns whether it wrote the event. Errors: TG422 for a NULL, malformed or over-long id.';

GRANT EXECUTE ON FUNCTION
  tollgate.sync_subscription(text, text, text, text[], text[], timestamptz, timestamptz, boolean, timestamptz, timestamptz, text, text, text, timestamptz, timestamptz, timestamptz, boolean),
  tollgate.stripe_subscription_gone(text, timestamptz),
  tollgate.stripe_customer_subscriptions(text),
  tollgate.stripe_due_resumes(integer),
  tollgate.trial_will_end(text)
TO tollgate_sidecar;
