CREATE OR REPLACE FUNCTION tollgate.note_blocked(customer text, feature text, amount bigint DEFAULT 1)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN tollgate._note($1, $2, $3, now());
END
$$;
COMMENT ON FUNCTION tollgate.note_blocked(text, text, bigint) IS
  'For a call that was blocked with TG402 (tollgate.require, a row gate): the error rolled back the call''s '
  'limit_reached event with its transaction, so no upgrade prompt would follow. Call this after the rollback, in a '
  'transaction that commits: when the call would still be blocked it records the window''s limit_reached event '
  '(once, however often it is called, and under the same rule as consume); it never counts usage. Returns the '
  'verdict. The Django helper calls it for you. Errors: TG404 unknown feature, TG422 invalid argument.';

-- note_blocked at p_at.
CREATE OR REPLACE FUNCTION tollgate._note(p_customer text, p_feature text, p_amount bigint, p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  r tollgate.usage;
  w record;
BEGIN
  PERFORM tollgate._check_args(p_customer, p_feature, p_amount);
  r := tollgate._usage_row(p_customer, p_feature, p_at, true);
  IF r.window_end = '-infinity' THEN
    SELECT * INTO w FROM tollgate._rolling(p_customer, p_feature, p_at);
    IF r.quota IS NULL OR r.soft OR p_amount <= r.quota - w.used THEN
      RETURN tollgate._verdict(true, p_customer, p_feature, r.plan, w.used, r.quota, w.resets_at);
    END IF;
    IF tollgate._prompts(p_amount, r.quota) THEN
      PERFORM tollgate._emit('limit_reached', p_customer, p_feature, r.plan, w.used, r.quota, 100, w.slot, NULL, p_at);
    END IF;
    RETURN tollgate._verdict(false, p_customer, p_feature, r.plan, w.used, r.quota, w.resets_at);
  END IF;
  IF r.quota IS NULL OR r.soft OR p_amount <= r.quota - r.used THEN
    RETURN tollgate._verdict(true, p_customer, p_feature, r.plan, tollgate._total(r), r.quota, r.window_end);
  END IF;
  RETURN tollgate._block(r, p_amount, p_at);
END
$$;
