-- The usage at which the next event of a window is due after p_used: the
-- lowest notify_at mark above it, and under soft enforcement quota + 1 (the
-- first unit over). NULL = none (unlimited features have no events).
CREATE OR REPLACE FUNCTION tollgate._next_mark(p_feature text, p_used bigint, p_quota bigint, p_soft boolean)
RETURNS bigint
LANGUAGE sql STABLE
AS $$
  SELECT least(min(m.mark), 9223372036854775807)::bigint
    FROM (SELECT ceil(p_quota::numeric * t / 100) AS mark
            FROM tollgate.features f CROSS JOIN LATERAL unnest(f.notify_at) t
           WHERE f.feature = p_feature
          UNION ALL
          SELECT p_quota::numeric + 1 WHERE p_soft) m
   WHERE m.mark > p_used
$$;

-- After a window's usage went from p_old to p_new: writes a threshold event
-- for every notify_at percent crossed and, under soft enforcement, a
-- limit_reached event for the first units over the quota. Each fires once per
-- window (_emit). Returns the window's next mark.
CREATE OR REPLACE FUNCTION tollgate._crossed(
  p_customer text, p_feature text, p_plan text, p_old bigint, p_new bigint, p_quota bigint,
  p_soft boolean, p_start timestamptz, p_end timestamptz, p_at timestamptz)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
  v_pct integer;
  v_mark numeric;
BEGIN
  FOR v_pct IN SELECT t FROM tollgate.features f CROSS JOIN LATERAL unnest(f.notify_at) t WHERE f.feature = p_feature LOOP
    v_mark := ceil(p_quota::numeric * v_pct / 100);
    IF p_old < v_mark AND p_new >= v_mark THEN
      PERFORM tollgate._emit('threshold', p_customer, p_feature, p_plan, p_new, p_quota, v_pct,
                             p_start, nullif(p_end, 'infinity'), p_at);
    END IF;
  END LOOP;
  IF p_soft AND p_old <= p_quota AND p_new > p_quota THEN
    PERFORM tollgate._emit('limit_reached', p_customer, p_feature, p_plan, p_new, p_quota, 100,
                           p_start, nullif(p_end, 'infinity'), p_at);
  END IF;
  RETURN tollgate._next_mark(p_feature, p_new, p_quota, p_soft);
END
$$;
