CREATE OR REPLACE FUNCTION tollgate.set_setting(key text, value text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_window interval;
BEGIN
  IF $1 IS NULL OR $1 NOT IN ('past_due_is_grace', 'attribution_window') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('unknown setting %L', $1),
      HINT = 'Known settings: past_due_is_grace, attribution_window.';
  END IF;
  IF $1 = 'past_due_is_grace' AND $2 IS DISTINCT FROM 'true' AND $2 IS DISTINCT FROM 'false' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'past_due_is_grace is true or false';
  END IF;
  IF $1 = 'attribution_window' THEN
    BEGIN
      v_window := $2::interval;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
      v_window := NULL;
    END;
    IF v_window IS NULL OR v_window <= interval '0' THEN
      RAISE EXCEPTION USING ERRCODE = 'TG422',
        MESSAGE = format('attribution_window is a positive interval, not %L', $2),
        HINT = 'For example ''30 days''.';
    END IF;
  END IF;
  INSERT INTO tollgate.settings AS s (key, value) VALUES ($1, $2)
  ON CONFLICT ON CONSTRAINT settings_pkey DO UPDATE SET value = EXCLUDED.value;
  IF $1 = 'past_due_is_grace' THEN
    PERFORM tollgate._refresh_customer(s.customer)
       FROM tollgate.subscriptions s WHERE s.status = 'past_due' AND s.customer IS NOT NULL;
  END IF;
END
$$;
COMMENT ON FUNCTION tollgate.set_setting(text, text) IS
  'Sets a behaviour setting (owner only): past_due_is_grace (true/false: a past_due subscription keeps its plan); '
  'attribution_window (a positive interval, default 30 days: how long after an upgrade prompt a conversion is '
  'attributed to it). Errors: TG422 for an unknown setting or a bad value.';
