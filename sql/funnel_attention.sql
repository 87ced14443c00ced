-- What tollgate report lists as needing attention besides dead emails
-- (tollgate.outbox_counts): Stripe subscriptions that cannot give anyone a
-- plan because no customer or no plan is known for them. Ended subscriptions
-- (canceled, incomplete_expired, and gone: Stripe answered 404) would give no
-- plan anyway and are left out.
CREATE OR REPLACE FUNCTION tollgate.unmapped_subscriptions()
RETURNS TABLE (
  stripe_subscription text,
  stripe_customer     text,
  customer            text,
  status              text,
  price_ids           text[],
  product_ids         text[],
  problem             text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  SELECT s.stripe_subscription, s.stripe_customer, s.customer, s.status, s.price_ids, s.product_ids,
         CASE WHEN s.customer IS NULL AND s.plan IS NULL THEN 'no customer, no plan'
              WHEN s.customer IS NULL THEN 'no customer'
              ELSE 'no plan' END
    FROM tollgate.subscriptions s
   WHERE (s.customer IS NULL OR s.plan IS NULL)
     AND s.status NOT IN ('canceled', 'incomplete_expired') AND s.gone_at IS NULL
   ORDER BY s.stripe_subscription
$$;
COMMENT ON FUNCTION tollgate.unmapped_subscriptions() IS
  'Stripe subscriptions that give nobody a plan because tollgate knows no customer for their Stripe customer '
  '(link it: set_customer, metadata.tollgate_customer or Checkout) or no plan names their prices or products '
  '(add them to a plan); ended ones (canceled, incomplete_expired, gone) are left out. problem says which: no customer, '
  'no plan, or no customer, no plan.';

GRANT EXECUTE ON FUNCTION tollgate.unmapped_subscriptions() TO tollgate_sidecar;

-- Top-up purchases that wait for their customer: paid in Stripe, not granted
-- because nobody is known for their Stripe customer (docs/stripe.md).
CREATE OR REPLACE FUNCTION tollgate.waiting_topups()
RETURNS TABLE (
  stripe_object   text,
  stripe_customer text,
  price_ids       text[],
  quantities      bigint[],
  received_at     timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  SELECT tp.stripe_object, tp.stripe_customer, tp.price_ids, tp.quantities, tp.received_at
    FROM tollgate.topup_purchases tp
   WHERE tp.granted_at IS NULL
   ORDER BY tp.received_at, tp.stripe_object
$$;
COMMENT ON FUNCTION tollgate.waiting_topups() IS
  'Paid Stripe purchases of top-up packs that wait for their customer (no tollgate customer is known for their '
  'Stripe customer, or they have none): granted once the Stripe customer is linked (set_customer, '
  'metadata.tollgate_customer, a completed Checkout Session); one without a Stripe customer waits for an '
  'operator (tollgate.grant with the key OBJECT:TOPUP).';

GRANT EXECUTE ON FUNCTION tollgate.waiting_topups() TO tollgate_sidecar;
