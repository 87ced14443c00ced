CREATE OR REPLACE FUNCTION tollgate.set_customer(customer text, email text DEFAULT NULL, stripe_customer text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_customer text := $1;
  v_email text := $2;
  v_stripe text := $3;
BEGIN
  IF v_customer IS NULL OR v_customer = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'customer must be a non-empty text';
  END IF;
  IF v_email IS NOT NULL AND v_email !~ '^[^@\s]+@[^@\s]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('email %L is not an email address', v_email);
  END IF;
  IF v_stripe IS NOT NULL AND v_stripe !~ '^cus_[A-Za-z0-9]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_customer %L is not a Stripe customer id', v_stripe),
      HINT = 'Stripe customer ids look like cus_NffrFeUfNV2Hib.';
  END IF;
  BEGIN
    INSERT INTO tollgate.customers AS c (customer, email, stripe_customer)
    VALUES (v_customer, v_email, v_stripe)
    ON CONFLICT ON CONSTRAINT customers_pkey DO UPDATE
      SET email = coalesce(EXCLUDED.email, c.email),
          stripe_customer = coalesce(EXCLUDED.stripe_customer, c.stripe_customer),
          updated_at = now();
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
  END IF;
END
$$;
COMMENT ON FUNCTION tollgate.set_customer(text, text, text) IS
  'Registers customer, or updates it: email (where upgrade prompts go) and stripe_customer (the Stripe Customer.id '
  'that links their subscriptions). NULL leaves a value as it is. Errors: TG422 for an empty customer, a malformed '
  'email or Stripe id, or a Stripe id that belongs to another customer.';
