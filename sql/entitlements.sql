-- Entitlements beyond the plan: a customer's own quota (overrides) and units
-- on top of it (grants, top-up packs). They change what a customer gets, so
-- the app's role may not call these: tollgate_admin (support tools) may, and
-- the sidecar records top-up purchases. Each change makes the customer's
-- usage rows stale (a new plan_epoch), so the next call sees it.

-- Registers a customer seen first by an entitlement, and starts a new epoch.
CREATE OR REPLACE FUNCTION tollgate._entitlements_changed(p_customer text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  INSERT INTO tollgate.customers AS c (customer) VALUES (p_customer)
  ON CONFLICT (customer) DO UPDATE SET plan_epoch = c.plan_epoch + 1;
END
$$;

-- The checks the entitlement functions share: a known feature (TG404) that
-- is not rolling when p_fixed (grants need a window to be spent in), and a
-- reason of at most 1000 characters.
CREATE OR REPLACE FUNCTION tollgate._check_entitlement(p_customer text, p_feature text, p_reason text, p_fixed boolean)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  v_unit text;
BEGIN
  PERFORM tollgate._check_text('customer', p_customer, 255);
  PERFORM tollgate._check_text('feature', p_feature, 63);
  SELECT f.period_unit INTO v_unit FROM tollgate.features f WHERE f.feature = p_feature;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('unknown feature %L', p_feature);
  END IF;
  IF p_fixed AND v_unit = 'rolling' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('feature %s has a rolling period: grants need a fixed or lifetime one', p_feature);
  END IF;
  IF pg_catalog.length(p_reason) > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'reason must be at most 1000 characters long';
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION tollgate.set_override(
  customer text, feature text, quota bigint, until timestamptz DEFAULT NULL, reason text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  PERFORM tollgate._check_entitlement($1, $2, $5, false);
  IF $3 < 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('quota must be 0 or more, not %s', $3),
      HINT = 'NULL means unlimited.';
  END IF;
  IF $4 <= now() OR NOT pg_catalog.isfinite($4) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'until must be a finite time in the future',
      HINT = 'NULL means until it is cleared.';
  END IF;
  PERFORM tollgate._entitlements_changed($1);
  INSERT INTO tollgate.overrides AS o (customer, feature, quota, until, reason) VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT ON CONSTRAINT overrides_pkey DO UPDATE
    SET quota = EXCLUDED.quota, until = EXCLUDED.until, reason = EXCLUDED.reason, created_at = now();
END
$$;
COMMENT ON FUNCTION tollgate.set_override(text, text, bigint, timestamptz, text) IS
  'Gives customer a quota of its own for feature in place of the plan''s (tollgate_admin): quota NULL = unlimited, '
  'until NULL = until cleared. Verdicts, usage(), events and thresholds use it from the next call: a quota below '
  'the usage blocks, a higher one unblocks. Errors: TG404 unknown feature, TG422 invalid argument.';

CREATE OR REPLACE FUNCTION tollgate.clear_override(customer text, feature text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  PERFORM tollgate._check_entitlement($1, $2, NULL, false);
  DELETE FROM tollgate.overrides o WHERE o.customer = $1 AND o.feature = $2;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM tollgate._entitlements_changed($1);
  RETURN true;
END
$$;
COMMENT ON FUNCTION tollgate.clear_override(text, text) IS
  'Removes customer''s override of feature (tollgate_admin): the plan''s quota applies again from the next call. '
  'Returns false when there was none. Errors: TG404 unknown feature, TG422 invalid argument.';

CREATE OR REPLACE FUNCTION tollgate.grant(
  customer text, feature text, amount bigint, expires_at timestamptz DEFAULT NULL, reason text DEFAULT NULL,
  key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_same boolean;
BEGIN
  PERFORM tollgate._check_entitlement($1, $2, $5, true);
  IF $3 IS NULL OR $3 <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'amount must be a positive integer';
  END IF;
  IF $4 <= now() OR NOT pg_catalog.isfinite($4) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'expires_at must be a finite time in the future',
      HINT = 'NULL means never.';
  END IF;
  IF $6 IS NOT NULL THEN
    PERFORM tollgate._check_text('key', $6, 255);
  END IF;
  PERFORM tollgate._entitlements_changed($1);
  INSERT INTO tollgate.grants AS g (customer, feature, amount, expires_at, reason, key)
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT ON CONSTRAINT grants_customer_key_key DO NOTHING
  RETURNING g.id INTO v_id;
  IF v_id IS NULL THEN
    SELECT g.id, g.feature = $2 AND g.amount = $3 INTO v_id, v_same
      FROM tollgate.grants g WHERE g.customer = $1 AND g.key = $6;
    IF NOT v_same THEN
      RAISE EXCEPTION USING ERRCODE = 'TG422',
        MESSAGE = format('key %L already granted another feature or amount to this customer', $6);
    END IF;
  END IF;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION tollgate.grant(text, text, bigint, timestamptz, text, text) IS
  'Grants customer amount units of feature on top of the window quota (tollgate_admin, and the sidecar for top-up '
  'packs): spent once the quota of a window is used up, across windows, until expires_at (NULL = never). key '
  'makes it idempotent: the same key grants once and returns the first grant''s id. Not for rolling features. '
  'Errors: TG404 unknown feature, TG422 invalid argument or a key reused with another feature or amount.';

-- Top-up packs (tollgate.yaml topups:, written by tollgate apply as the owner).
CREATE OR REPLACE FUNCTION tollgate.define_topup(
  topup text, stripe_price text, feature text, amount bigint, expires interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  IF $1 IS NULL OR $1 !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('top-up name %L is not valid', $1),
      HINT = 'Use lower-case letters, digits and _, starting with a letter (at most 63).';
  END IF;
  IF $2 IS NULL OR $2 !~ '^price_[A-Za-z0-9_]{1,249}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('stripe_price %L is not a Stripe price id', $2);
  END IF;
  PERFORM tollgate._check_entitlement('-', $3, NULL, true);
  IF $4 IS NULL OR $4 <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'amount must be a positive integer';
  END IF;
  IF $5 <= interval '0' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'expires must be a positive interval';
  END IF;
  INSERT INTO tollgate.topups AS t (topup, stripe_price, feature, amount, expires) VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT ON CONSTRAINT topups_pkey DO UPDATE
    SET stripe_price = EXCLUDED.stripe_price, feature = EXCLUDED.feature, amount = EXCLUDED.amount,
        expires = EXCLUDED.expires;
END
$$;
COMMENT ON FUNCTION tollgate.define_topup(text, text, text, bigint, interval) IS
  'Creates or updates a top-up pack (owner only): a payment for stripe_price grants amount of feature, expiring '
  'after expires (NULL = never). Errors: TG404 unknown feature, TG422 invalid argument.';

CREATE OR REPLACE FUNCTION tollgate.remove_topup(topup text)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  DELETE FROM tollgate.topups t WHERE t.topup = $1
$$;
COMMENT ON FUNCTION tollgate.remove_topup(text) IS
  'Removes a top-up pack (owner only); grants already made stay.';

-- A paid Stripe object (a Checkout Session in payment mode, or a paid
-- invoice) whose line items include top-up prices: grants each pack's units
-- times its quantity to the customer, once per object and pack however often
-- it is recorded. Called by the sidecar with what it re-fetched from Stripe.
CREATE OR REPLACE FUNCTION tollgate.record_topup(
  stripe_object text, customer text, price_ids text[], quantities bigint[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  t record;
  v_granted bigint := 0;
BEGIN
  PERFORM tollgate._check_text('stripe_object', $1, 190);
  PERFORM tollgate._check_text('customer', $2, 255);
  IF $3 IS NULL OR $4 IS NULL OR cardinality($3) <> cardinality($4) OR array_position($3, NULL) IS NOT NULL
     OR array_position($4, NULL) IS NOT NULL OR EXISTS (SELECT FROM unnest($4) q WHERE q <= 0 OR q > 1000000) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'price_ids and quantities must be arrays of the same length, quantities from 1 to 1000000';
  END IF;
  FOR t IN
    SELECT p.topup, p.feature, least(p.amount::numeric * sum(l.quantity), 9223372036854775807)::bigint AS units,
           now() + p.expires AS expires_at
      FROM unnest($3, $4) AS l(price, quantity)
      JOIN tollgate.topups p ON p.stripe_price = l.price
     GROUP BY p.topup, p.feature, p.amount, p.expires
     ORDER BY p.topup
  LOOP
    PERFORM tollgate.grant($2, t.feature, t.units, t.expires_at, 'top-up ' || t.topup, $1 || ':' || t.topup);
    v_granted := v_granted + 1;
  END LOOP;
  RETURN v_granted;
END
$$;
COMMENT ON FUNCTION tollgate.record_topup(text, text, text[], bigint[]) IS
  'For the sidecar: grants the top-up packs among a paid Stripe object''s prices (with their quantities) to '
  'customer, once per object and pack (redelivery and reconcile grant nothing more). Returns how many packs it '
  'matched. Errors: TG422 invalid argument.';
