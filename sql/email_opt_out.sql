CREATE OR REPLACE FUNCTION tollgate.set_email_opt_out(customer text, opted_out boolean)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_customer text := $1;
  v_opted_out boolean := $2;
BEGIN
  IF v_customer IS NULL OR v_customer = '' OR pg_catalog.length(v_customer) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'customer must be a text of 1 to 255 characters';
  END IF;
  IF v_opted_out IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'opted_out must be true or false, not NULL';
  END IF;
  -- An unknown customer is registered, so an opt-out given before their
  -- first gated call is kept.
  INSERT INTO tollgate.customers AS c (customer, email_opt_out)
  VALUES (v_customer, v_opted_out)
  ON CONFLICT ON CONSTRAINT customers_pkey DO UPDATE
    SET email_opt_out = EXCLUDED.email_opt_out, updated_at = EXCLUDED.updated_at
  WHERE c.email_opt_out IS DISTINCT FROM EXCLUDED.email_opt_out;
END
$$;
COMMENT ON FUNCTION tollgate.set_email_opt_out(text, boolean) IS
  'Opts customer out of upgrade-prompt emails (opted_out = true) or back in (false). Takes effect for emails not yet '
  'handed to the provider: those are skipped. An unknown customer is registered on the default plan. Errors: TG422 '
  'for a NULL, empty or over-long (255) customer or a NULL opted_out.';

GRANT EXECUTE ON FUNCTION tollgate.set_email_opt_out(text, boolean) TO tollgate_app;
