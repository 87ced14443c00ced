-- The plan that Stripe prices or products mean: the highest-ranked plan that
-- names any of them; NULL when no plan does.
CREATE OR REPLACE FUNCTION tollgate._plan_for(p_prices text[], p_products text[])
RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT p.plan
    FROM tollgate.plans p
   WHERE p.stripe_prices && coalesce(p_prices, '{}') OR p.stripe_products && coalesce(p_products, '{}')
   ORDER BY p.rank DESC, p.plan
   LIMIT 1
$$;
