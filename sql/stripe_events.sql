CREATE OR REPLACE FUNCTION tollgate.record_stripe_event(
  id text, type text, api_version text DEFAULT NULL, object_id text DEFAULT NULL, stripe_created timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_id text := $1;
  v_type text := $2;
BEGIN
  PERFORM tollgate._check_stripe_id(v_id, 'id', 'evt', 'Stripe event ids look like evt_1NG8Du2eZvKYlo2CUI79vXWy');
  PERFORM tollgate._check_text('type', v_type, 255);
  PERFORM tollgate._check_text('api_version', $3, 255, true);
  PERFORM tollgate._check_text('object_id', $4, 255, true);
  PERFORM tollgate._check_stripe_time($5, 'stripe_created', true);
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
  'a rolled-back effect leaves the event unrecorded and a retry applies it. Errors: TG422 for a NULL, malformed or '
  'over-long (255) id, type, api_version or object_id, or a created time at the epoch or infinite.';

CREATE OR REPLACE FUNCTION tollgate.stripe_event_seen(id text)
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  PERFORM tollgate._check_stripe_id($1, 'id', 'evt', 'Stripe event ids look like evt_1NG8Du2eZvKYlo2CUI79vXWy');
  RETURN EXISTS (SELECT FROM tollgate.stripe_events e WHERE e.id = $1);
END
$$;
COMMENT ON FUNCTION tollgate.stripe_event_seen(text) IS
  'Sidecar: whether the Stripe event (Event.id) was recorded already: a redelivery can be answered without '
  're-fetching anything. Errors: TG422 for a NULL, malformed or over-long (255) id.';

GRANT EXECUTE ON FUNCTION
  tollgate.record_stripe_event(text, text, text, text, timestamptz),
  tollgate.stripe_event_seen(text)
TO tollgate_sidecar;
