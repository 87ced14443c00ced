-- Keeps subscriptions mapped and customers' plans current whoever writes a
-- subscription row (the sidecar's sync, a test, an operator by hand):
-- before the write, the plan comes from the prices and products and the
-- customer from the Stripe customer's owner (tollgate._stripe_owner) when
-- not given; after it, every
-- customer concerned gets their plan recomputed.
CREATE OR REPLACE FUNCTION tollgate._subscriptions_before()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  NEW.plan := tollgate._plan_for(NEW.price_ids, NEW.product_ids);
  IF NEW.customer IS NULL THEN
    NEW.customer := tollgate._stripe_owner(NEW.stripe_customer);
  END IF;
  RETURN NEW;
END
$$;

-- A subscription stored as active that was stored as trialing is a trial ->
-- paid conversion (tollgate.trial_conversions), attributed to the trial
-- prompt sent for that trial, if one was.
CREATE OR REPLACE FUNCTION tollgate._subscriptions_after()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
  v_email bigint;
  v_prompted timestamptz;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM tollgate._refresh_customer(OLD.customer);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.customer IS DISTINCT FROM OLD.customer THEN
    PERFORM tollgate._refresh_customer(NEW.customer);
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.status = 'trialing' AND NEW.status = 'active' AND NEW.customer IS NOT NULL THEN
    SELECT m.id, m.sent_at INTO v_email, v_prompted
      FROM tollgate.emails m
      JOIN tollgate.events e ON e.id = m.event_id
     WHERE m.customer = NEW.customer AND m.feature = '' AND m.status = 'sent'
       AND e.kind = 'trial_will_end' AND e.period_start = OLD.trial_start
     ORDER BY m.sent_at DESC
     LIMIT 1;
    INSERT INTO tollgate.trial_conversions AS t
      (stripe_subscription, customer, plan, trial_start, trial_end, email_id, prompted_at)
    VALUES (NEW.stripe_subscription, NEW.customer, NEW.plan, OLD.trial_start, OLD.trial_end, v_email, v_prompted)
    ON CONFLICT (stripe_subscription, trial_start) DO NOTHING;
  END IF;
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS subscriptions_before ON tollgate.subscriptions;
CREATE TRIGGER subscriptions_before BEFORE INSERT OR UPDATE ON tollgate.subscriptions
  FOR EACH ROW EXECUTE FUNCTION tollgate._subscriptions_before();
DROP TRIGGER IF EXISTS subscriptions_after ON tollgate.subscriptions;
CREATE TRIGGER subscriptions_after AFTER INSERT OR UPDATE OR DELETE ON tollgate.subscriptions
  FOR EACH ROW EXECUTE FUNCTION tollgate._subscriptions_after();
