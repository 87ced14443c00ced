-- Builds a verdict: what remains, when the window resets (NULL for lifetime)
-- and, when blocked or over the quota, the message (the feature's own, or a
-- default that says the numbers).
CREATE OR REPLACE FUNCTION tollgate._verdict(
  p_allowed boolean, p_customer text, p_feature text, p_plan text,
  p_used bigint, p_quota bigint, p_end timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  v_message text;
BEGIN
  IF NOT p_allowed OR p_used > p_quota THEN
    SELECT f.message INTO v_message FROM tollgate.features f WHERE f.feature = p_feature;
    v_message := coalesce(v_message, format('You have used %s of %s %s on the %s plan. Upgrade to continue.',
                                            p_used, p_quota, p_feature, p_plan));
  END IF;
  RETURN ROW(p_allowed, p_customer, p_feature, p_plan, p_used, p_quota,
             CASE WHEN p_quota IS NOT NULL THEN greatest(p_quota - p_used, 0) END,
             CASE WHEN pg_catalog.isfinite(p_end) THEN p_end END,
             v_message)::tollgate.verdict;
END
$$;

-- A limit_reached event means the customer's usage is what blocked them: it
-- is written for a blocked call that would have fit in an empty window
-- (p_amount <= quota), or for any call of a feature the plan does not include
-- (quota 0: the customer asked for a higher plan's feature). A single call
-- that asks for more than the whole quota is refused without an event.
CREATE OR REPLACE FUNCTION tollgate._prompts(p_amount bigint, p_quota bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
  SELECT p_amount <= p_quota OR p_quota = 0
$$;
