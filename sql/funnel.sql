-- The conversion funnel of the customers on the default plan whose limit
-- events happened in [since, until): a cohort, followed to its conversions
-- whenever they happen, so each stage is part of the one before it
-- (hit_threshold >= hit_limit >= prompted >= clicked, prompted >= attributed).
-- Counts are of customers. Organic conversions have no prompt to follow: they
-- are counted when they happen in the range. docs/conversions.md explains each
-- column.
--
-- Reads events by created_at, emails by sent_at (partial index of sent
-- emails), link clicks and plan_changes by time: never usage.

-- The columns before clicked: a reinstall over them must drop it (a return
-- type cannot be replaced).
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_proc p
              WHERE p.oid = to_regprocedure('tollgate.funnel(timestamptz, timestamptz)')
                AND NOT 'clicked' = ANY (p.proargnames)) THEN
    DROP FUNCTION tollgate.funnel(timestamptz, timestamptz);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION tollgate.funnel(since timestamptz, until timestamptz)
RETURNS TABLE (
  feature         text,
  hit_threshold   bigint,
  hit_limit       bigint,
  prompted        bigint,
  clicked         bigint,
  converted       bigint,
  attributed      bigint,
  organic         bigint,
  conversion_rate double precision,
  median_seconds  double precision,
  p90_seconds     double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
-- one aggregation over many rows: no JIT (its compile time is most of a
-- second), and room to hash the cohort in memory
SET search_path = tollgate, pg_temp SET jit = off SET work_mem = '64MB'
AS $$
#variable_conflict use_column
DECLARE
  v_since timestamptz := $1;
  v_until timestamptz := $2;
  v_default text;
BEGIN
  IF v_since IS NULL OR v_until IS NULL OR v_since > v_until THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('funnel wants since <= until, not %s to %s',
                       coalesce(v_since::text, 'NULL'), coalesce(v_until::text, 'NULL')),
      HINT = 'For the last 30 days: tollgate.funnel(now() - interval ''30 days'', now()).';
  END IF;
  SELECT p.plan INTO v_default FROM tollgate.plans p WHERE p.is_default;

  RETURN QUERY
  WITH clicks AS (
    -- who clicked an upgrade link of which feature since the range began
    -- (after the event, so not before since)
    SELECT DISTINCT k.customer, k.feature FROM tollgate.link_clicks k WHERE k.clicked_at >= v_since
  ), cohort AS (
    -- one pass over the events of the range, hashed by feature and customer
    -- and by customer alone (the total counts each customer once): did they
    -- hit the limit, were they sent a prompt for one of these events (sent
    -- after the event, so not before since), did they click an upgrade link
    -- of the feature (the email's or the 402's: a click shows they were
    -- prompted too)
    SELECT e.feature, GROUPING(e.feature) = 1 AS total,
           bool_or(e.kind = 'limit_reached') AS hit_limit,
           bool_or(m.event_id IS NOT NULL OR (k.customer IS NOT NULL AND e.kind = 'limit_reached')) AS prompted,
           bool_or(k.customer IS NOT NULL AND e.kind = 'limit_reached') AS clicked
      FROM tollgate.events e
      LEFT JOIN tollgate.emails m ON m.event_id = e.id AND m.status = 'sent' AND m.sent_at >= v_since
      LEFT JOIN clicks k ON k.customer = e.customer AND k.feature = e.feature
     WHERE e.created_at >= v_since AND e.created_at < v_until AND e.plan = v_default
     GROUP BY GROUPING SETS ((e.feature, e.customer), (e.customer))
  ), c_agg AS (
    SELECT c.feature, count(*) AS hit_threshold, count(*) FILTER (WHERE c.hit_limit) AS hit_limit,
           count(*) FILTER (WHERE c.prompted) AS prompted, count(*) FILTER (WHERE c.clicked) AS clicked
      FROM cohort c
     GROUP BY c.feature, c.total
  ), converted AS (
    -- conversions attributed to a prompt for an event of the range, whenever
    -- they happened (after the prompt, so not before since); each one's
    -- event looked up by its key (LIMIT keeps the planner from scanning all
    -- events instead)
    SELECT e.feature, pc.customer, extract(epoch FROM pc.changed_at - pc.prompted_at)::double precision AS seconds
      FROM tollgate.plan_changes pc
     CROSS JOIN LATERAL (
        SELECT e.feature FROM tollgate.events e
         WHERE e.id = pc.event_id AND e.created_at >= v_since AND e.created_at < v_until AND e.plan = v_default
         LIMIT 1) e
     WHERE pc.kind = 'conversion' AND pc.event_id IS NOT NULL AND pc.changed_at >= v_since
    UNION ALL
    -- conversions of a click on a link that named no event (a 402 before
    -- any limit_reached event): the clicked feature's event of the range
    SELECT e.feature, pc.customer, extract(epoch FROM pc.changed_at - pc.prompted_at)::double precision
      FROM tollgate.plan_changes pc
     CROSS JOIN LATERAL (
        SELECT e.feature FROM tollgate.events e
         WHERE e.customer = pc.customer AND e.feature = pc.feature AND e.created_at >= v_since
           AND e.created_at < v_until AND e.plan = v_default
         LIMIT 1) e
     WHERE pc.kind = 'conversion' AND pc.event_id IS NULL AND pc.click_id IS NOT NULL AND pc.changed_at >= v_since
    UNION ALL
    -- organic conversions in the range: for each feature the customer hit in
    -- the range before converting (a few index lookups per conversion), and
    -- with feature NULL when none (counted in the total only)
    SELECT f.feature, pc.customer, NULL
      FROM tollgate.plan_changes pc
      LEFT JOIN LATERAL (
        SELECT DISTINCT e.feature FROM tollgate.events e
         WHERE e.customer = pc.customer AND e.created_at >= v_since AND e.created_at < v_until
           AND e.created_at <= pc.changed_at AND e.plan = v_default) f ON true
     WHERE pc.kind = 'conversion' AND pc.feature IS NULL
       AND pc.changed_at >= v_since AND pc.changed_at < v_until
  ), v_agg AS (
    SELECT v.feature, GROUPING(v.feature) = 1 AS total,
           count(DISTINCT v.customer) AS converted,
           count(DISTINCT v.customer) FILTER (WHERE v.seconds IS NOT NULL) AS attributed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY v.seconds) AS median_seconds,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY v.seconds) AS p90_seconds
      FROM converted v
     GROUP BY GROUPING SETS ((v.feature), ())
  )
  -- a feature's row exists when it had events in the range; the total row
  -- (feature NULL, last) always does: v_agg's () set gives it
  SELECT c.feature, coalesce(c.hit_threshold, 0), coalesce(c.hit_limit, 0), coalesce(c.prompted, 0),
         coalesce(c.clicked, 0), coalesce(v.converted, 0), coalesce(v.attributed, 0), coalesce(v.converted - v.attributed, 0),
         coalesce(v.attributed, 0)::double precision / nullif(c.prompted, 0),
         v.median_seconds, v.p90_seconds
    FROM (SELECT * FROM v_agg WHERE v_agg.total OR v_agg.feature IS NOT NULL) v
    FULL JOIN c_agg c ON coalesce(c.feature, '') = CASE WHEN v.total THEN '' ELSE v.feature END
   ORDER BY c.feature IS NULL, c.feature;
END
$$;
COMMENT ON FUNCTION tollgate.funnel(timestamptz, timestamptz) IS
  'The conversion funnel of the customers on the default plan whose limit events happened in [since, until): one '
  'row per feature and a total row (feature NULL), counting customers. hit_threshold: had any event; hit_limit: a '
  'limit_reached event; prompted: were sent an upgrade prompt for one, or clicked an upgrade link of its feature; '
  'clicked: clicked an upgrade link (the email''s or the 402''s) of its feature since; attributed: converted to a '
  'paid plan with the conversion attributed to such a prompt or click (at any time); organic: converted in the range with no prompt to '
  'attribute it to (in a feature''s row, those who hit that feature before converting; the total has them all); '
  'converted: attributed or organic; conversion_rate: attributed / prompted (NULL when none were prompted); '
  'median_seconds and p90_seconds: from prompt to attributed conversion. Errors: TG422 for a NULL bound or since '
  'after until.';

GRANT EXECUTE ON FUNCTION tollgate.funnel(timestamptz, timestamptz) TO tollgate_sidecar;

-- Trials that ended in [since, until) (Stripe's trial_end of subscriptions
-- that belong to a customer), followed to their conversions whenever they
-- happen: prompted were sent the trial prompt for that trial; converted went
-- from trialing to active (tollgate.trial_conversions); attributed did so
-- after a prompt. Counts are of trials (subscriptions).
CREATE OR REPLACE FUNCTION tollgate.trial_funnel(since timestamptz, until timestamptz)
RETURNS TABLE (
  trials           bigint,
  prompted         bigint,
  converted        bigint,
  attributed       bigint,
  organic          bigint,
  conversion_rate  double precision,
  prompted_rate    double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_since timestamptz := $1;
  v_until timestamptz := $2;
BEGIN
  IF v_since IS NULL OR v_until IS NULL OR v_since > v_until THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('trial_funnel wants since <= until, not %s to %s',
                                  coalesce(v_since::text, 'NULL'), coalesce(v_until::text, 'NULL')),
      HINT = 'For the last 30 days: tollgate.trial_funnel(now() - interval ''30 days'', now()).';
  END IF;
  RETURN QUERY
  WITH t AS (
    SELECT s.stripe_subscription, s.customer, s.trial_start,
           EXISTS (SELECT FROM tollgate.emails m JOIN tollgate.events e ON e.id = m.event_id
                    WHERE m.customer = s.customer AND m.feature = '' AND m.status = 'sent'
                      AND e.kind = 'trial_will_end' AND e.period_start = s.trial_start) AS prompted,
           tc.id IS NOT NULL AS converted,
           tc.email_id IS NOT NULL OR tc.prompted_at IS NOT NULL AS attributed
      FROM tollgate.subscriptions s
      LEFT JOIN tollgate.trial_conversions tc
        ON tc.stripe_subscription = s.stripe_subscription AND tc.trial_start IS NOT DISTINCT FROM s.trial_start
     WHERE s.trial_end >= v_since AND s.trial_end < v_until AND s.customer IS NOT NULL
  )
  SELECT count(*), count(*) FILTER (WHERE t.prompted), count(*) FILTER (WHERE t.converted),
         count(*) FILTER (WHERE t.attributed), count(*) FILTER (WHERE t.converted AND NOT t.attributed),
         (count(*) FILTER (WHERE t.converted))::double precision / nullif(count(*), 0),
         (count(*) FILTER (WHERE t.attributed))::double precision / nullif(count(*) FILTER (WHERE t.prompted), 0)
    FROM t;
END
$$;
COMMENT ON FUNCTION tollgate.trial_funnel(timestamptz, timestamptz) IS
  'The trials (Stripe subscriptions of known customers) whose trial ended in [since, until), one row: trials; '
  'prompted: were sent the trial prompt (stripe.trial_prompt) for that trial; converted: went from trialing to '
  'active, at any time (tollgate.trial_conversions); attributed: converted after a trial prompt; organic: '
  'converted without one; conversion_rate: converted / trials; prompted_rate: attributed / prompted (NULL when '
  'none). Errors: TG422 for a NULL bound or since after until.';

GRANT EXECUTE ON FUNCTION tollgate.trial_funnel(timestamptz, timestamptz) TO tollgate_sidecar;
