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

CREATE OR REPLACE FUNCTION tollgate._subscriptions_after()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM tollgate._refresh_customer(OLD.customer);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.customer IS DISTINCT FROM OLD.customer THEN
    PERFORM tollgate._refresh_customer(NEW.customer);
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
