CREATE OR REPLACE FUNCTION tollgate.usage(customer text)
RETURNS SETOF tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  PERFORM tollgate._check_text('customer', $1, 255);
  RETURN QUERY
    SELECT v.*
      FROM tollgate.features f
     CROSS JOIN LATERAL tollgate._check($1, f.feature, 1, now()) v
     ORDER BY f.feature;
END
$$;
COMMENT ON FUNCTION tollgate.usage(text) IS
  'One verdict per feature for customer, changing nothing: "80 of 100 API calls used" displays. allowed says '
  'whether one more unit would be allowed. Errors: TG422 invalid customer.';
