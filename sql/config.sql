-- What a call needs from the configuration, read once off the hot path: the
-- feature's period and enforcement, the customer's plan (the default plan for
-- a customer not seen yet) with its quota for the feature, and the versions a
-- usage row copies them at. A plan without a limit row for the feature does
-- not include it: quota 0. Errors: TG404 unknown feature, no default plan.
CREATE OR REPLACE FUNCTION tollgate._config(
  p_customer text,
  p_feature text,
  OUT period_unit text,
  OUT period_length integer,
  OUT soft boolean,
  OUT known boolean,
  OUT anchor timestamptz,
  OUT period_start timestamptz,
  OUT period_end timestamptz,
  OUT plan text,
  OUT quota bigint,
  OUT config_version bigint,
  OUT plan_epoch bigint)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  SELECT f.period_unit, f.period_length, f.enforcement = 'soft',
         c.customer IS NOT NULL, c.created_at, c.period_start, c.period_end,
         coalesce(c.plan, d.plan), CASE WHEN l.plan IS NULL THEN 0 ELSE l.quota END,
         s.version, coalesce(c.plan_epoch, 0)
    INTO period_unit, period_length, soft, known, anchor, period_start, period_end,
         plan, quota, config_version, plan_epoch
    FROM tollgate.features f
   CROSS JOIN tollgate.config_state s
    LEFT JOIN tollgate.customers c ON c.customer = p_customer
    LEFT JOIN tollgate.plans d ON d.is_default
    LEFT JOIN tollgate.limits l ON l.feature = f.feature AND l.plan = coalesce(c.plan, d.plan)
   WHERE f.feature = p_feature;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404',
      MESSAGE = format('unknown feature %L', p_feature),
      HINT = 'Define it with tollgate.define_feature or in tollgate.yaml, then run tollgate apply.';
  END IF;
  IF plan IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404',
      MESSAGE = 'no default plan is defined',
      HINT = 'Define one with tollgate.define_plan(plan, is_default => true).';
  END IF;
END
$$;
