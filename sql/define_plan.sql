CREATE OR REPLACE FUNCTION tollgate.define_plan(
  plan text,
  is_default boolean DEFAULT false,
  stripe_prices text[] DEFAULT '{}',
  rank integer DEFAULT 0,
  stripe_products text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_plan text := $1;
  v_default boolean := coalesce($2, false);
  v_prices text[] := coalesce($3, '{}');
  v_rank integer := coalesce($4, 0);
  v_products text[] := coalesce($5, '{}');
BEGIN
  IF v_plan IS NULL OR v_plan !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('plan name %L is not valid', v_plan),
      HINT = 'Use lower-case letters, digits and _, starting with a letter (at most 63).';
  END IF;
  IF array_position(v_prices, NULL) IS NOT NULL OR array_position(v_products, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'stripe_prices and stripe_products must not contain NULL';
  END IF;
  IF v_default THEN
    UPDATE tollgate.plans p SET is_default = false, updated_at = now() WHERE p.is_default AND p.plan <> v_plan;
  ELSIF EXISTS (SELECT FROM tollgate.plans p WHERE p.plan = v_plan AND p.is_default) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('plan %s is the default plan; there must always be one', v_plan),
      HINT = 'Make another plan the default first: tollgate.define_plan(other, is_default => true).';
  END IF;
  INSERT INTO tollgate.plans AS p (plan, is_default, stripe_prices, stripe_products, rank)
  VALUES (v_plan, v_default, v_prices, v_products, v_rank)
  ON CONFLICT ON CONSTRAINT plans_pkey DO UPDATE
    SET is_default = EXCLUDED.is_default, stripe_prices = EXCLUDED.stripe_prices,
        stripe_products = EXCLUDED.stripe_products, rank = EXCLUDED.rank, updated_at = EXCLUDED.updated_at
  WHERE (p.is_default, p.stripe_prices, p.stripe_products, p.rank)
        IS DISTINCT FROM (EXCLUDED.is_default, EXCLUDED.stripe_prices, EXCLUDED.stripe_products, EXCLUDED.rank);
  -- prices may now mean another plan: remap stored subscriptions (the trigger
  -- recomputes their customers' plans)
  UPDATE tollgate.subscriptions s SET synced_at = s.synced_at
   WHERE s.plan IS DISTINCT FROM tollgate._plan_for(s.price_ids, s.product_ids);
END
$$;
COMMENT ON FUNCTION tollgate.define_plan(text, boolean, text[], integer, text[]) IS
  'Creates or updates a plan (owner only). is_default marks the plan of every customer without an entitled '
  'subscription (exactly one at a time); stripe_prices / stripe_products are the Stripe ids that mean this plan; '
  'rank decides between several entitled subscriptions (highest wins). Errors: TG422.';
