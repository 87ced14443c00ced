CREATE OR REPLACE FUNCTION tollgate.set_setting(key text, value text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  IF $1 IS NULL OR $1 NOT IN ('past_due_is_grace') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('unknown setting %L', $1),
      HINT = 'Known settings: past_due_is_grace.';
  END IF;
  IF $1 = 'past_due_is_grace' AND $2 NOT IN ('true', 'false') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'past_due_is_grace is true or false';
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
  'Sets a behaviour setting (owner only): past_due_is_grace (true/false: a past_due subscription keeps its plan).';
