CREATE OR REPLACE FUNCTION tollgate.remove_limit(plan text, feature text)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  DELETE FROM tollgate.limits l WHERE l.plan = $1 AND l.feature = $2
$$;
COMMENT ON FUNCTION tollgate.remove_limit(text, text) IS
  'Removes plan''s limit for feature (owner only): the plan no longer includes the feature.';

CREATE OR REPLACE FUNCTION tollgate.remove_feature(feature text)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  DELETE FROM tollgate.features f WHERE f.feature = $1
$$;
COMMENT ON FUNCTION tollgate.remove_feature(text) IS
  'Removes a feature with its limits and routes (owner only). Its usage history and events are kept.';

CREATE OR REPLACE FUNCTION tollgate.remove_plan(plan text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT FROM tollgate.plans p WHERE p.plan = $1 AND p.is_default) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('plan %s is the default plan and cannot be removed', $1),
      HINT = 'Make another plan the default first.';
  END IF;
  DELETE FROM tollgate.plans p WHERE p.plan = $1;
  -- subscriptions that meant this plan now mean another one, or none
  UPDATE tollgate.subscriptions s SET synced_at = s.synced_at WHERE s.plan = $1;
END
$$;
COMMENT ON FUNCTION tollgate.remove_plan(text) IS
  'Removes a plan and its limits (owner only); its customers fall back to what their subscriptions mean, or the '
  'default plan. Errors: TG422 for the default plan.';
