CREATE OR REPLACE FUNCTION tollgate.consume(customer text, feature text, amount bigint DEFAULT 1)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN tollgate._gate($1, $2, $3, 'consume', now());
END
$$;
COMMENT ON FUNCTION tollgate.consume(text, text, bigint) IS
  'Counts amount of feature for customer in the current window if the plan''s limit allows, atomically and '
  'exactly under any concurrency. A blocked call (hard limit) counts nothing and returns allowed = false with '
  'the upgrade message; a soft limit allows the call and records the overage. Runs inside the caller''s '
  'transaction: a rollback gives the usage back and drops any event. A customer seen for the first time is '
  'registered on the default plan. Errors: TG404 unknown feature, TG422 NULL/empty customer or non-positive amount.';
