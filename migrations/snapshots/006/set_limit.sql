CREATE OR REPLACE FUNCTION tollgate.set_limit(plan text, feature text, quota bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM tollgate.plans p WHERE p.plan = $1) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('unknown plan %L', $1);
  END IF;
  IF NOT EXISTS (SELECT FROM tollgate.features f WHERE f.feature = $2) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('unknown feature %L', $2);
  END IF;
  IF $3 < 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('quota must be 0 or more, not %s', $3), HINT = 'NULL means unlimited.';
  END IF;
  INSERT INTO tollgate.limits AS l (plan, feature, quota) VALUES ($1, $2, $3)
  ON CONFLICT ON CONSTRAINT limits_pkey DO UPDATE SET quota = EXCLUDED.quota
  WHERE l.quota IS DISTINCT FROM EXCLUDED.quota;
END
$$;
COMMENT ON FUNCTION tollgate.set_limit(text, text, bigint) IS
  'Sets what plan may use of feature per window (owner only): a number, NULL = unlimited (or "on"), 0 = not '
  'included ("off"). Errors: TG404 unknown plan or feature, TG422 negative quota.';
