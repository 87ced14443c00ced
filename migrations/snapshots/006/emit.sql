-- Writes one limit event and wakes the sidecar. The unique key makes each
-- event fire once per customer, feature, window, kind and threshold however
-- many clients race; NOTIFY is sent only when a row was really written, and
-- PostgreSQL delivers it only if the caller commits.
CREATE OR REPLACE FUNCTION tollgate._emit(
  p_kind text,
  p_customer text,
  p_feature text,
  p_plan text,
  p_used bigint,
  p_quota bigint,
  p_threshold integer,
  p_period_start timestamptz,
  p_period_end timestamptz,
  p_at timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  v_id bigint;
BEGIN
  INSERT INTO tollgate.events AS e
    (kind, customer, feature, plan, used, quota, threshold, period_start, period_end, created_at)
  VALUES
    (p_kind, p_customer, p_feature, p_plan, p_used, p_quota, p_threshold, p_period_start, p_period_end, p_at)
  ON CONFLICT (customer, feature, period_start, kind, threshold) DO NOTHING
  RETURNING e.id INTO v_id;
  IF v_id IS NOT NULL THEN
    PERFORM pg_catalog.pg_notify('tollgate_events', v_id::text);
  END IF;
END
$$;
