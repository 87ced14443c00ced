-- The support view of one customer (tollgate customer CUSTOMER): everything a
-- support agent asks about, as one JSON document.
CREATE OR REPLACE FUNCTION tollgate.customer_summary(customer text)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_customer text := $1;
BEGIN
  PERFORM tollgate._check_text('customer', v_customer, 255);
  RETURN (
    SELECT jsonb_build_object(
      'customer', v_customer,
      'known', c.customer IS NOT NULL,
      'email', c.email,
      'stripe_customer', c.stripe_customer,
      'signed_up', c.created_at,
      'plan', coalesce(c.plan, (SELECT p.plan FROM tollgate.plans p WHERE p.is_default)),
      'period_start', c.period_start,
      'period_end', c.period_end,
      'subscriptions', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                 'stripe_subscription', s.stripe_subscription, 'status', s.status, 'plan', s.plan,
                 'current_period_end', s.current_period_end, 'cancel_at_period_end', s.cancel_at_period_end)
                 ORDER BY s.stripe_created DESC NULLS LAST, s.stripe_subscription)
          FROM tollgate.subscriptions s WHERE s.customer = v_customer), '[]'),
      'features', coalesce((
        SELECT jsonb_agg(to_jsonb(v) || jsonb_build_object(
                 'override', (SELECT jsonb_build_object('quota', o.quota, 'until', o.until, 'reason', o.reason)
                                FROM tollgate.overrides o WHERE o.customer = v_customer AND o.feature = v.feature),
                 'grants', coalesce((
                   SELECT jsonb_agg(jsonb_build_object(
                            'id', g.id, 'amount', g.amount, 'spent', g.spent, 'expires_at', g.expires_at,
                            'reason', g.reason, 'expired', g.expires_at <= now()) ORDER BY g.id)
                     FROM tollgate.grants g WHERE g.customer = v_customer AND g.feature = v.feature), '[]'))
                 ORDER BY v.feature)
          FROM tollgate.usage(v_customer) v), '[]'),
      'events', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                 'kind', e.kind, 'feature', e.feature, 'threshold', e.threshold, 'used', e.used, 'quota', e.quota,
                 'plan', e.plan, 'at', e.created_at) ORDER BY e.created_at DESC, e.id DESC)
          FROM (SELECT * FROM tollgate.events e WHERE e.customer = v_customer
                 ORDER BY e.created_at DESC, e.id DESC LIMIT 10) e), '[]'),
      'emails', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                 'id', m.id, 'feature', m.feature, 'template', m.template, 'status', m.status,
                 'attempts', m.attempts, 'to', m.to_email, 'provider', m.provider, 'handed_off_at', m.handed_off_at)
                 ORDER BY m.id DESC)
          FROM (SELECT * FROM tollgate.emails m WHERE m.customer = v_customer ORDER BY m.id DESC LIMIT 10) m), '[]'),
      'plan_changes', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                 'kind', x.kind, 'from', x.from_plan, 'to', x.to_plan, 'feature', x.feature,
                 'prompted_at', x.prompted_at, 'at', x.changed_at) ORDER BY x.changed_at DESC, x.id DESC)
          FROM (SELECT * FROM tollgate.plan_changes x WHERE x.customer = v_customer
                 ORDER BY x.changed_at DESC, x.id DESC LIMIT 10) x), '[]'))
      FROM (SELECT) one
      LEFT JOIN tollgate.customers c ON c.customer = v_customer);
END
$$;
COMMENT ON FUNCTION tollgate.customer_summary(text) IS
  'Everything support asks about one customer, as JSON (tollgate_admin; tollgate customer prints it): plan and '
  'subscriptions, each feature''s verdict with its override and grants, the last 10 events, emails and plan '
  'changes. Errors: TG422 invalid customer.';
