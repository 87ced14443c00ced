CREATE OR REPLACE FUNCTION tollgate.set_customer(customer text, email text DEFAULT NULL, stripe_customer text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_customer text := $1;
  v_email text := $2;
  v_stripe text := $3;
BEGIN
  PERFORM tollgate._check_text('customer', v_customer, 255);
  IF v_email IS NOT NULL AND (pg_catalog.length(v_email) > 320 OR v_email !~ '^[^@\s]+@[^@\s]+$') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('email %L is not an email address of at most 320 characters', left(v_email, 400));
  END IF;
  IF v_stripe IS NOT NULL AND (pg_catalog.length(v_stripe) > 255 OR v_stripe !~ '^cus_[A-Za-z0-9]+$') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_customer %L is not a Stripe customer id of at most 255 characters', left(v_stripe, 300)),
      HINT = 'Stripe customer ids look like cus_NffrFeUfNV2Hib.';
  END IF;
  IF v_stripe IS NOT NULL THEN
    -- Checked here, one link of a Stripe customer at a time, besides the
    -- unique key: on a Citus cluster customers is distributed by customer and
    -- cannot have that key (docs/scaling.md).
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('tollgate stripe customer ' || v_stripe, 0));
    IF EXISTS (SELECT 1 FROM tollgate.customers c WHERE c.stripe_customer = v_stripe AND c.customer <> v_customer) THEN
      RAISE EXCEPTION USING ERRCODE = 'TG422',
        MESSAGE = format('stripe_customer %s already belongs to another customer', v_stripe),
        DETAIL = (SELECT format('customer %L', c.customer) FROM tollgate.customers c WHERE c.stripe_customer = v_stripe LIMIT 1);
    END IF;
  END IF;
  BEGIN
    INSERT INTO tollgate.customers AS c (customer, email, stripe_customer)
    VALUES (v_customer, v_email, v_stripe)
    ON CONFLICT ON CONSTRAINT customers_pkey DO UPDATE
      SET email = coalesce(EXCLUDED.email, c.email),
          stripe_customer = coalesce(EXCLUDED.stripe_customer, c.stripe_customer),
          updated_at = EXCLUDED.updated_at;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_customer %s already belongs to another customer', v_stripe),
      DETAIL = (SELECT format('customer %L', c.customer) FROM tollgate.customers c WHERE c.stripe_customer = v_stripe);
  END;
  IF v_stripe IS NOT NULL THEN
    -- link this Stripe customer's subscriptions (the trigger recomputes plans)
    -- subscriptions of the customer's previous Stripe customer go to whoever owns that one now
    UPDATE tollgate.subscriptions s SET customer = tollgate._stripe_owner(s.stripe_customer)
     WHERE s.customer = v_customer AND s.stripe_customer <> v_stripe
       AND s.customer IS DISTINCT FROM tollgate._stripe_owner(s.stripe_customer);
    UPDATE tollgate.subscriptions s SET customer = v_customer
     WHERE s.stripe_customer = v_stripe AND s.customer IS DISTINCT FROM v_customer;
    -- top-up packs bought by this Stripe customer before anyone knew whose it was
    PERFORM tollgate._grant_pending_topups(v_stripe);
  END IF;
END
$$;
COMMENT ON FUNCTION tollgate.set_customer(text, text, text) IS
  'Registers customer, or updates it: email (where upgrade prompts go) and stripe_customer (the Stripe Customer.id '
  'that links their subscriptions, and grants the top-up packs it bought that waited for an owner). NULL leaves a '
  'value as it is. Errors: TG422 for an empty customer or one over '
  '255 characters, a malformed email or one over 320 characters, a malformed Stripe id or one over 255 '
  'characters, or a Stripe id that belongs to another customer.';
