-- Writes one limit event and wakes the sidecar. A limit_reached event of a
-- feature with prompt variants carries the customer's variant, which is
-- stored as theirs from then on (sql/variants.sql). The unique key makes each
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
  v_variant text;
BEGIN
  IF p_kind = 'limit_reached' THEN
    v_variant := tollgate._variant(p_customer, p_feature); -- NULL: the feature has no prompt experiment
  END IF;
  INSERT INTO tollgate.events AS e
    (kind, customer, feature, plan, used, quota, threshold, period_start, period_end, created_at, variant)
  VALUES
    (p_kind, p_customer, p_feature, p_plan, p_used, p_quota, p_threshold, p_period_start, p_period_end, p_at, v_variant)
  ON CONFLICT (customer, feature, period_start, kind, threshold) DO NOTHING
  RETURNING e.id INTO v_id;
  IF v_id IS NOT NULL THEN
    IF v_variant IS NOT NULL THEN
      PERFORM tollgate._assign_variant(p_customer, p_feature, v_variant);
    END IF;
    PERFORM pg_catalog.pg_notify('tollgate_events', v_id::text);
  END IF;
END
$$;
