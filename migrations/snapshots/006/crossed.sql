-- After usage went from p_old to p_new: writes a threshold event for every
-- notify_at percent crossed, and under soft enforcement a limit_reached event
-- for the first call over the quota. Each fires once per window (_emit).
CREATE OR REPLACE FUNCTION tollgate._crossed(
  p_customer text, p_feature text, p_plan text, p_old bigint, p_new bigint, p_quota bigint,
  p_soft boolean, p_notify integer[], p_start timestamptz, p_end timestamptz, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  v_pct integer;
  v_mark bigint;
BEGIN
  FOREACH v_pct IN ARRAY p_notify LOOP
    v_mark := ceil(p_quota * v_pct / 100.0)::bigint;
    IF p_old < v_mark AND p_new >= v_mark THEN
      PERFORM tollgate._emit('threshold', p_customer, p_feature, p_plan, p_new, p_quota, v_pct, p_start, nullif(p_end, 'infinity'), p_at);
    END IF;
  END LOOP;
  IF p_soft AND p_old <= p_quota AND p_new > p_quota THEN
    PERFORM tollgate._emit('limit_reached', p_customer, p_feature, p_plan, p_new, p_quota, 100, p_start, nullif(p_end, 'infinity'), p_at);
  END IF;
END
$$;
