CREATE OR REPLACE FUNCTION tollgate.usage(customer text)
RETURNS SETOF tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN QUERY
    SELECT v.*
      FROM tollgate.features f
     CROSS JOIN LATERAL tollgate._gate($1, f.feature, 1, 'check', now()) v
     ORDER BY f.feature;
END
$$;
COMMENT ON FUNCTION tollgate.usage(text) IS
  'One verdict per feature for customer, changing nothing: "80 of 100 API calls used" displays. allowed says '
  'whether one more unit would be allowed.';
