CREATE OR REPLACE FUNCTION tollgate.define_feature(
  feature text,
  period text,
  enforcement text DEFAULT 'hard',
  notify_at integer[] DEFAULT '{100}',
  message text DEFAULT NULL,
  upgrade_prompt text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_feature text := $1;
  v_period text := $2;
  v_enforcement text := coalesce($3, 'hard');
  v_notify integer[] := coalesce($4, '{}');
  v_match text[];
  v_unit text;
  v_length integer := 1;
BEGIN
  IF v_feature IS NULL OR v_feature !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('feature name %L is not valid', v_feature),
      HINT = 'Use lower-case letters, digits and _, starting with a letter (at most 63).';
  END IF;
  v_match := regexp_match(v_period, '^(?:(month|billing|lifetime)|([1-9][0-9]{0,5})([dh])|rolling ([1-9][0-9]{0,3})d)$');
  IF v_match IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('period %L is not valid', v_period),
      HINT = 'Use month, billing, lifetime, <N>d, <N>h or rolling <N>d.';
  END IF;
  IF v_match[1] IS NOT NULL THEN
    v_unit := v_match[1];
  ELSIF v_match[2] IS NOT NULL THEN
    v_unit := CASE v_match[3] WHEN 'd' THEN 'day' ELSE 'hour' END;
    v_length := v_match[2]::integer;
  ELSE
    v_unit := 'rolling';
    v_length := v_match[4]::integer;
  END IF;
  IF v_enforcement NOT IN ('hard', 'soft') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('enforcement %L is not valid', v_enforcement), HINT = 'Use hard or soft.';
  END IF;
  IF EXISTS (SELECT FROM unnest(v_notify) t WHERE t IS NULL OR t NOT BETWEEN 1 AND 100) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('notify_at %s is not valid', v_notify), HINT = 'Use percents from 1 to 100.';
  END IF;
  v_notify := ARRAY(SELECT DISTINCT t FROM unnest(v_notify) t ORDER BY t);
  INSERT INTO tollgate.features AS f
    (feature, period, period_unit, period_length, enforcement, notify_at, message, upgrade_prompt)
  VALUES (v_feature, v_period, v_unit, v_length, v_enforcement, v_notify, $5, $6)
  ON CONFLICT ON CONSTRAINT features_pkey DO UPDATE
    SET period = EXCLUDED.period, period_unit = EXCLUDED.period_unit, period_length = EXCLUDED.period_length,
        enforcement = EXCLUDED.enforcement, notify_at = EXCLUDED.notify_at, message = EXCLUDED.message,
        upgrade_prompt = EXCLUDED.upgrade_prompt, updated_at = EXCLUDED.updated_at
  WHERE (f.period, f.enforcement, f.notify_at, f.message, f.upgrade_prompt)
        IS DISTINCT FROM (EXCLUDED.period, EXCLUDED.enforcement, EXCLUDED.notify_at, EXCLUDED.message, EXCLUDED.upgrade_prompt);
END
$$;
COMMENT ON FUNCTION tollgate.define_feature(text, text, text, integer[], text, text) IS
  'Creates or updates a feature (owner only). period: month (calendar, UTC), billing (the subscription''s period; '
  'monthly from sign-up when free), <N>d / <N>h (fixed windows from sign-up), rolling <N>d (sliding, exact to the '
  'hour), lifetime (never resets). enforcement: hard blocks at the quota, soft allows and records the overage. '
  'notify_at: percents whose crossing writes an event. message: shown when blocked. upgrade_prompt: the email '
  'template of the upgrade prompt (NULL = none). A boolean feature (on/off per plan) is a lifetime feature whose '
  'limits are NULL (on) or 0 (off), asked with tollgate.check. Errors: TG422.';
