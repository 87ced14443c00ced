CREATE OR REPLACE FUNCTION tollgate.set_setting(key text, value text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_window interval;
BEGIN
  IF $1 IS NULL OR $1 NOT IN ('past_due_is_grace', 'attribution_window', 'pause_collection_keeps_plan', 'trial_prompt') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('unknown setting %s', coalesce(pg_catalog.quote_literal(pg_catalog.left($1, 64)), 'NULL')),
      HINT = 'Known settings: past_due_is_grace, attribution_window, pause_collection_keeps_plan, trial_prompt.';
  END IF;
  IF $2 IS NULL OR pg_catalog.length($2) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('the value of %s must be a text of at most 255 characters, not %s', $1,
                                  CASE WHEN $2 IS NULL THEN 'NULL' ELSE pg_catalog.length($2) || ' characters' END);
  END IF;
  IF $1 IN ('past_due_is_grace', 'pause_collection_keeps_plan') AND $2 NOT IN ('true', 'false') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = pg_catalog.format('%s is true or false', $1);
  END IF;
  IF $1 = 'trial_prompt' AND $2 <> '' AND $2 !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'trial_prompt is an email template name, or empty for none',
      HINT = 'Lower-case letters, digits and _, starting with a letter (at most 63).';
  END IF;
  IF $1 = 'attribution_window' THEN
    BEGIN
      v_window := $2::interval;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
      v_window := NULL;
    END;
    IF v_window IS NULL OR v_window <= interval '0' OR v_window > interval '1000 years' THEN
      RAISE EXCEPTION USING ERRCODE = 'TG422',
        MESSAGE = pg_catalog.format('attribution_window is a positive interval of at most 1000 years, not %s',
                                    pg_catalog.quote_literal(pg_catalog.left($2, 64))),
        HINT = 'For example ''30 days''.';
    END IF;
  END IF;
  INSERT INTO tollgate.settings AS s (key, value) VALUES ($1, $2)
  ON CONFLICT ON CONSTRAINT settings_pkey DO UPDATE SET value = EXCLUDED.value;
  IF $1 = 'past_due_is_grace' THEN
    PERFORM tollgate._refresh_customer(s.customer)
       FROM tollgate.subscriptions s WHERE s.status = 'past_due' AND s.customer IS NOT NULL;
  ELSIF $1 = 'pause_collection_keeps_plan' THEN
    PERFORM tollgate._refresh_customer(s.customer)
       FROM tollgate.subscriptions s WHERE s.pause_collection IS NOT NULL AND s.customer IS NOT NULL;
  END IF;
END
$$;
COMMENT ON FUNCTION tollgate.set_setting(text, text) IS
  'Sets a behaviour setting (owner only): past_due_is_grace (true/false: a past_due subscription keeps its plan); '
  'pause_collection_keeps_plan (true/false: a subscription whose payment collection is paused keeps its plan; '
  'false by default: it gives no plan until the pause resumes); attribution_window (a positive interval, default '
  '30 days: how long after an upgrade prompt a conversion is attributed to it); trial_prompt (the email template '
  'of the prompt sent when a trial ends soon without a payment method; empty for none). Errors: TG422 for an '
  'unknown setting or a bad, NULL or over-long (255) value.';
