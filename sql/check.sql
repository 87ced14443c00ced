CREATE OR REPLACE FUNCTION tollgate.check(customer text, feature text, amount bigint DEFAULT 1)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN tollgate._check($1, $2, $3, now());
END
$$;
COMMENT ON FUNCTION tollgate.check(text, text, bigint) IS
  'The verdict consume would give for amount, changing nothing (no usage, no events, no customer registered) and '
  'taking no lock. Use it to show or hide a feature, and for boolean features (quota 0 = off, unlimited = on). '
  'Errors: TG404 unknown feature, TG422 invalid argument.';

-- check at p_at: reads only. A current usage row answers; otherwise the
-- configuration and the window's counts do.
CREATE OR REPLACE FUNCTION tollgate._check(p_customer text, p_feature text, p_amount bigint, p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  r tollgate.usage;
  cfg record;
  w record;
  v_start timestamptz;
  v_end timestamptz;
  v_used bigint := 0;
BEGIN
  PERFORM tollgate._check_args(p_customer, p_feature, p_amount);
  SELECT u.* INTO r
    FROM tollgate.usage u
    JOIN tollgate.customers c ON c.customer = u.customer AND c.plan_epoch = u.plan_epoch
   WHERE u.customer = p_customer AND u.feature = p_feature
     AND u.window_start <= p_at AND u.window_end > p_at
     AND u.config_version = (SELECT cs.version FROM tollgate.config_state cs);
  IF FOUND THEN
    v_used := tollgate._total(r);
    RETURN tollgate._verdict(r.quota IS NULL OR r.soft OR p_amount <= r.quota - v_used,
                             p_customer, p_feature, r.plan, v_used, r.quota, r.window_end);
  END IF;

  SELECT * INTO cfg FROM tollgate._config(p_customer, p_feature);
  IF cfg.period_unit = 'rolling' THEN
    SELECT * INTO w FROM tollgate._rolling(p_customer, p_feature, p_at);
    RETURN tollgate._verdict(cfg.quota IS NULL OR cfg.soft OR p_amount <= cfg.quota - w.used,
                             p_customer, p_feature, cfg.plan, w.used, cfg.quota, w.resets_at);
  END IF;
  v_start := tollgate._window_start(cfg.period_unit, cfg.period_length, p_at, coalesce(cfg.anchor, p_at),
                                    cfg.period_start, cfg.period_end);
  v_end := coalesce(tollgate._window_end(cfg.period_unit, cfg.period_length, p_at, coalesce(cfg.anchor, p_at),
                                         cfg.period_start, cfg.period_end), 'infinity');
  SELECT u.* INTO r FROM tollgate.usage u WHERE u.customer = p_customer AND u.feature = p_feature;
  IF r.window_start = v_start THEN
    v_used := tollgate._total(r);
  ELSIF r.window_start > v_start THEN
    -- a closed window
    SELECT least(coalesce(sum(h.used), 0) + tollgate._shard_total(p_customer, p_feature, v_start),
                 9223372036854775807)::bigint
      INTO v_used
      FROM tollgate.usage_windows h
     WHERE h.customer = p_customer AND h.feature = p_feature AND h.window_start = v_start;
  END IF;
  RETURN tollgate._verdict(cfg.quota IS NULL OR cfg.soft OR p_amount <= cfg.quota - v_used,
                           p_customer, p_feature, cfg.plan, v_used, cfg.quota, v_end);
END
$$;
