CREATE OR REPLACE FUNCTION tollgate.require(customer text, feature text, amount bigint DEFAULT 1)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v tollgate.verdict := tollgate._consume($1, $2, $3, now());
BEGIN
  IF NOT v.allowed THEN
    PERFORM tollgate._raise_quota_exceeded(v, $3);
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION tollgate.require(text, text, bigint) IS
  'Like consume, but a blocked call raises SQLSTATE TG402 (DETAIL: JSON with feature, customer, plan, used, '
  'quota, resets_at, amount; HINT: the upgrade message), so the caller''s transaction cannot go on unnoticed.';
