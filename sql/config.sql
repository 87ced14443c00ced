-- What a call needs from the configuration, read once off the hot path: the
-- feature's period and enforcement, the customer's plan (the default plan for
-- a customer not seen yet) with its quota for the feature (the customer's own
-- override in place of the plan's while it lasts), the grant units left, the
-- versions a usage row copies them at, and until when that copy holds (an
-- override's end, a grant's expiry). A plan without a limit row for the
-- feature does not include it: quota 0. Errors: TG404 unknown feature, no
-- default plan.
CREATE OR REPLACE FUNCTION tollgate._config(
  p_customer text,
  p_feature text,
  p_at timestamptz,
  OUT period_unit text,
  OUT period_length integer,
  OUT soft boolean,
  OUT known boolean,
  OUT anchor timestamptz,
  OUT period_start timestamptz,
  OUT period_end timestamptz,
  OUT plan text,
  OUT quota bigint,
  OUT granted bigint,
  OUT valid_until timestamptz,
  OUT config_version bigint,
  OUT plan_epoch bigint)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  SELECT f.period_unit, f.period_length, f.enforcement = 'soft',
         c.customer IS NOT NULL, c.created_at, c.period_start, c.period_end,
         coalesce(c.plan, d.plan),
         CASE WHEN o.customer IS NOT NULL THEN o.quota WHEN l.plan IS NULL THEN 0 ELSE l.quota END,
         coalesce(o.until, 'infinity'),
         s.version, coalesce(c.plan_epoch, 0)
    INTO period_unit, period_length, soft, known, anchor, period_start, period_end,
         plan, quota, valid_until, config_version, plan_epoch
    FROM tollgate.features f
   CROSS JOIN tollgate.config_state s
    LEFT JOIN tollgate.customers c ON c.customer = p_customer
    LEFT JOIN tollgate.plans d ON d.is_default
    LEFT JOIN tollgate.limits l ON l.feature = f.feature AND l.plan = coalesce(c.plan, d.plan)
    LEFT JOIN tollgate.overrides o ON o.customer = p_customer AND o.feature = f.feature
                                   AND (o.until IS NULL OR o.until > p_at)
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
  SELECT g.granted, least(valid_until, g.expires) INTO granted, valid_until
    FROM tollgate._granted(p_customer, p_feature, p_at) g;
END
$$;

-- The units left on a customer's unexpired grants of a feature, and when the
-- first of them expires. The full path reads it after locking the usage row,
-- so it sees what the last holder of the row spent. (PL/pgSQL, as every
-- function over a per-customer table: docs/scaling.md.)
CREATE OR REPLACE FUNCTION tollgate._granted(
  p_customer text, p_feature text, p_at timestamptz, OUT granted bigint, OUT expires timestamptz)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  SELECT least(coalesce(sum(g.amount - g.spent), 0), 9223372036854775807)::bigint,
         coalesce(min(g.expires_at), 'infinity')
    INTO granted, expires
    FROM tollgate.grants g
   WHERE g.customer = p_customer AND g.feature = p_feature AND g.spent < g.amount
     AND (g.expires_at IS NULL OR g.expires_at > p_at);
END
$$;
