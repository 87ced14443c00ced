CREATE OR REPLACE FUNCTION tollgate.refund(customer text, feature text, amount bigint DEFAULT 1)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN tollgate._gate($1, $2, $3, 'refund', now());
END
$$;
COMMENT ON FUNCTION tollgate.refund(text, text, bigint) IS
  'Gives amount of usage back in the current window (never below 0), for work that was counted but not done. '
  'Returns the verdict after the refund; allowed says whether one more unit would be allowed. Events already '
  'written stay: each fires once per window.';
