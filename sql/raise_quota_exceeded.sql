-- Raises TG402 for a blocked verdict: MESSAGE names what was exceeded, DETAIL
-- is a JSON object (feature, customer, plan, used, quota, resets_at, amount)
-- that clients may parse (and pass to note_blocked), HINT is the feature's
-- upgrade message.
CREATE OR REPLACE FUNCTION tollgate._raise_quota_exceeded(v tollgate.verdict, p_amount bigint)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'TG402',
    MESSAGE = format('quota exceeded: %s for customer %s (%s of %s used)', v.feature, v.customer, v.used, v.quota),
    DETAIL = pg_catalog.json_build_object(
      'feature', v.feature, 'customer', v.customer, 'plan', v.plan,
      'used', v.used, 'quota', v.quota, 'resets_at', v.resets_at, 'amount', p_amount)::text,
    HINT = v.message;
END
$$;
