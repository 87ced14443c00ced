-- Builds a verdict: what remains, when the window resets (NULL for lifetime)
-- and, when blocked or over the quota, the message (the feature's own, or a
-- default that says the numbers).
CREATE OR REPLACE FUNCTION tollgate._verdict(
  p_allowed boolean, p_customer text, p_feature text, p_plan text,
  p_used bigint, p_quota bigint, p_end timestamptz, p_message text)
RETURNS tollgate.verdict
LANGUAGE sql STABLE
AS $$
  SELECT ROW(
    p_allowed, p_customer, p_feature, p_plan, p_used, p_quota,
    CASE WHEN p_quota IS NOT NULL THEN greatest(p_quota - p_used, 0) END,
    CASE WHEN p_end <> 'infinity' THEN p_end END,
    CASE WHEN NOT p_allowed OR p_used > p_quota THEN
      coalesce(p_message, format('You have used %s of %s %s on the %s plan. Upgrade to continue.',
                                 p_used, p_quota, p_feature, p_plan))
    END)::tollgate.verdict
$$;

-- The usage at which the next event is due after p_used: the lowest notify_at
-- mark above it, and under soft enforcement quota + 1 (the first call over).
CREATE OR REPLACE FUNCTION tollgate._next_mark(p_used bigint, p_quota bigint, p_soft boolean, p_notify integer[])
RETURNS bigint
LANGUAGE sql IMMUTABLE
AS $$
  SELECT min(m)
    FROM (SELECT ceil(p_quota * t / 100.0)::bigint AS m FROM unnest(p_notify) t
          UNION ALL
          SELECT p_quota + 1 WHERE p_soft) marks
   WHERE m > p_used
$$;
