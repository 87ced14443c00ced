CREATE OR REPLACE FUNCTION tollgate.check(customer text, feature text, amount bigint DEFAULT 1)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN tollgate._gate($1, $2, $3, 'check', now());
END
$$;
COMMENT ON FUNCTION tollgate.check(text, text, bigint) IS
  'The verdict consume would give for amount, changing nothing (no usage, no events, no customer registered). '
  'Use it to show or hide a feature, and for boolean features (quota 0 = off, unlimited = on). '
  'Errors: TG404 unknown feature, TG422 invalid argument.';
