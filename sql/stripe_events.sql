CREATE OR REPLACE FUNCTION tollgate.record_stripe_event(
  id text, type text, api_version text DEFAULT NULL, object_id text DEFAULT NULL, stripe_created timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_id text := $1;
  v_type text := $2;
BEGIN
  IF v_id IS NULL OR v_id !~ '^evt_[A-Za-z0-9_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('id %L is not a Stripe event id', v_id),
      HINT = 'Stripe event ids look like evt_1NG8Du2eZvKYlo2CUI79vXWy.';
  END IF;
  IF v_type IS NULL OR v_type = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'type must be a non-empty text';
  END IF;
  -- A concurrent delivery of the same event waits here for the first one's
  -- transaction, then finds the row (false) or, if that one rolled back,
  -- records the event itself.
  INSERT INTO tollgate.stripe_events AS e (id, type, api_version, object_id, stripe_created)
  VALUES (v_id, v_type, $3, $4, $5)
  ON CONFLICT ON CONSTRAINT stripe_events_pkey DO NOTHING;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION tollgate.record_stripe_event(text, text, text, text, timestamptz) IS
  'Sidecar: records a Stripe webhook event (Event.id, .type, .api_version, .data.object.id, .created) once. Returns '
  'true the first time and false for a duplicate. Call it in the transaction that applies the event''s effect, so '
  'a rolled-back effect leaves the event unrecorded and a retry applies it. Errors: TG422 for a malformed id.';

CREATE OR REPLACE FUNCTION tollgate.stripe_event_seen(id text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  SELECT EXISTS (SELECT FROM tollgate.stripe_events e WHERE e.id = $1)
$$;
COMMENT ON FUNCTION tollgate.stripe_event_seen(text) IS
  'Sidecar: whether the Stripe event (Event.id) was recorded already: a redelivery can be answered without '
  're-fetching anything.';

GRANT EXECUTE ON FUNCTION
  tollgate.record_stripe_event(text, text, text, text, timestamptz),
  tollgate.stripe_event_seen(text)
TO tollgate_sidecar;
