-- Recomputes a customer's plan and billing period from their subscriptions:
-- the best-ranked entitled subscription wins; none means the default plan
-- (customers.plan = NULL). Entitled: active, trialing, and past_due when the
-- setting past_due_is_grace is 'true'; not while its payment collection is
-- paused (pause_collection set, until its resumes_at) unless the setting
-- pause_collection_keeps_plan is 'true'; never once Stripe answered 404 for
-- it (gone_at).
CREATE OR REPLACE FUNCTION tollgate._refresh_customer(p_customer text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  v_plan text;
  v_start timestamptz;
  v_end timestamptz;
  v_grace boolean;
  v_paused_keeps boolean;
BEGIN
  IF p_customer IS NULL THEN
    RETURN;
  END IF;
  -- One refresh of a customer at a time: two syncs of two of their
  -- subscriptions (monthly to yearly) each see the other's committed row,
  -- instead of each deciding from a snapshot without the other.
  PERFORM FROM tollgate.customers c WHERE c.customer = p_customer FOR NO KEY UPDATE;
  SELECT s.value = 'true' INTO v_grace FROM tollgate.settings s WHERE s.key = 'past_due_is_grace';
  SELECT s.value = 'true' INTO v_paused_keeps FROM tollgate.settings s WHERE s.key = 'pause_collection_keeps_plan';
  SELECT s.plan, s.current_period_start, s.current_period_end
    INTO v_plan, v_start, v_end
    FROM tollgate.subscriptions s
    JOIN tollgate.plans p ON p.plan = s.plan AND NOT p.is_default
   WHERE s.customer = p_customer
     AND (s.status IN ('active', 'trialing') OR (s.status = 'past_due' AND coalesce(v_grace, false)))
     AND s.gone_at IS NULL
     AND (s.pause_collection IS NULL OR coalesce(v_paused_keeps, false) OR s.pause_resumes_at <= now())
   ORDER BY p.rank DESC, s.current_period_end DESC NULLS LAST, s.stripe_subscription
   LIMIT 1;
  -- A new epoch makes every usage row that copied the old plan stale (consume
  -- compares epochs), without locking those rows: no deadlock with an app
  -- transaction that holds them.
  UPDATE tollgate.customers c
     SET plan = v_plan, period_start = v_start, period_end = v_end, plan_epoch = c.plan_epoch + 1,
         updated_at = now()
   WHERE c.customer = p_customer
     AND (c.plan, c.period_start, c.period_end) IS DISTINCT FROM (v_plan, v_start, v_end);
END
$$;
