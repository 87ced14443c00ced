-- Recomputes a customer's plan and billing period from their subscriptions:
-- the best-ranked entitled subscription wins; none means the default plan
-- (customers.plan = NULL). Entitled: active, trialing, and past_due when the
-- setting past_due_is_grace is 'true'.
CREATE OR REPLACE FUNCTION tollgate._refresh_customer(p_customer text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  v_plan text;
  v_start timestamptz;
  v_end timestamptz;
  v_grace boolean;
BEGIN
  IF p_customer IS NULL THEN
    RETURN;
  END IF;
  SELECT s.value = 'true' INTO v_grace FROM tollgate.settings s WHERE s.key = 'past_due_is_grace';
  SELECT s.plan, s.current_period_start, s.current_period_end
    INTO v_plan, v_start, v_end
    FROM tollgate.subscriptions s
    JOIN tollgate.plans p ON p.plan = s.plan AND NOT p.is_default
   WHERE s.customer = p_customer
     AND (s.status IN ('active', 'trialing') OR (s.status = 'past_due' AND coalesce(v_grace, false)))
   ORDER BY p.rank DESC, s.current_period_end DESC NULLS LAST, s.stripe_subscription
   LIMIT 1;
  UPDATE tollgate.customers c
     SET plan = v_plan, period_start = v_start, period_end = v_end, updated_at = now()
   WHERE c.customer = p_customer
     AND (c.plan, c.period_start, c.period_end) IS DISTINCT FROM (v_plan, v_start, v_end);
  IF FOUND THEN
    -- the customer's usage rows copied the old plan: send them down the full path once
    UPDATE tollgate.usage u SET config_version = 0 WHERE u.customer = p_customer AND u.config_version <> 0;
  END IF;
END
$$;
