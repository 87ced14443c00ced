-- The message of a blocked verdict, or of one over its quota: the message of
-- the customer's prompt variant (sql/variants.sql), the feature's own, or a
-- default that says the numbers.
CREATE OR REPLACE FUNCTION tollgate._message(p_feature text, p_plan text, p_used bigint, p_quota bigint, p_customer text)
RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT coalesce((SELECT v.message FROM tollgate.prompt_variants v
                    WHERE v.feature = p_feature AND v.message IS NOT NULL
                      AND v.variant = tollgate._variant(p_customer, p_feature)),
                  (SELECT f.message FROM tollgate.features f WHERE f.feature = p_feature),
                  format('You have used %s of %s %s on the %s plan. Upgrade to continue.',
                         p_used, p_quota, p_feature, p_plan))
$$;

-- Builds a verdict: what remains of the quota, when the window resets (NULL
-- for lifetime), when blocked or over the quota the message, and the grant
-- units left. A plain expression the planner inlines into the caller.
CREATE OR REPLACE FUNCTION tollgate._verdict(
  p_allowed boolean, p_customer text, p_feature text, p_plan text,
  p_used bigint, p_quota bigint, p_end timestamptz, p_granted bigint)
RETURNS tollgate.verdict
LANGUAGE sql STABLE
AS $$
  SELECT ROW(p_allowed, p_customer, p_feature, p_plan, p_used, p_quota,
             CASE WHEN p_quota IS NOT NULL THEN greatest(p_quota - p_used, 0) END,
             CASE WHEN pg_catalog.isfinite(p_end) THEN p_end END,
             CASE WHEN NOT p_allowed OR (p_used > p_quota AND coalesce(p_granted, 0) = 0)
                  THEN tollgate._message(p_feature, p_plan, p_used, p_quota, p_customer) END,
             CASE WHEN p_quota IS NOT NULL THEN coalesce(p_granted, 0) END)::tollgate.verdict
$$;

-- A limit_reached event means the customer's usage is what blocked them: it
-- is written for a blocked call that would have fit in an empty window
-- (p_amount <= quota + granted), or for any call of a feature the plan does
-- not include (quota 0: the customer asked for a higher plan's feature). A
-- single call that asks for more than the whole quota is refused without an
-- event.
CREATE OR REPLACE FUNCTION tollgate._prompts(p_amount bigint, p_quota bigint, p_granted bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
  SELECT p_amount <= p_quota::numeric + p_granted OR p_quota = 0
$$;
