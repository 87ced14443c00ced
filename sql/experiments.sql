-- Prompt experiments' results (docs/conversions.md): per variant of a
-- feature's upgrade prompt, the customers who hit the limit with it, were
-- prompted, clicked and converted, the conversion rate with a 95% Wilson
-- interval, and against the variant named control the difference of rates
-- with a two-sided two-proportion z-test's p-value.
--
-- The rate is converted / hit_limit: every customer assigned a variant
-- counts, whether or not their email went out or they clicked (an
-- intention-to-treat rate, fair between variants that differ in what they
-- send). A customer converted when they moved from the default plan to a
-- paid one after their first limit_reached event of the range, whenever that
-- was, attributed or not.

-- The complementary error function, from Numerical Recipes' Chebyshev fit
-- (fractional error below 1.2e-7 everywhere): PostgreSQL 15 has no erf.
CREATE OR REPLACE FUNCTION tollgate._erfc(x double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN x >= 0 THEN r ELSE 2 - r END
    FROM (SELECT t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                 + t * (-0.82215223 + t * 0.17087277))))))))) AS r
            FROM (SELECT abs(x) AS z, 1 / (1 + 0.5 * abs(x)) AS t) a) b
$$;

-- The 95% Wilson score interval of x successes in n trials: its low end
-- (p_high false) or high end; NULL when n is 0.
CREATE OR REPLACE FUNCTION tollgate._wilson(x bigint, n bigint, p_high boolean)
RETURNS double precision
LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN n > 0 THEN
           (p + zz / (2 * n) + CASE WHEN p_high THEN 1 ELSE -1 END * z * sqrt(p * (1 - p) / n + zz / (4.0 * n * n)))
           / (1 + zz / n) END
    FROM (SELECT x::double precision / nullif(n, 0) AS p, 1.959963984540054::double precision AS z,
                 1.959963984540054::double precision ^ 2 AS zz) c
$$;

-- The two-sided p-value of a pooled two-proportion z-test of x1/n1 against
-- x2/n2; 1 when both are all or nothing alike; NULL when a side is empty.
CREATE OR REPLACE FUNCTION tollgate._two_proportion_p(x1 bigint, n1 bigint, x2 bigint, n2 bigint)
RETURNS double precision
LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN n1 = 0 OR n2 = 0 THEN NULL
              WHEN pooled IN (0, 1) THEN 1
              ELSE tollgate._erfc(abs(x1::double precision / n1 - x2::double precision / n2)
                                  / sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2)) / sqrt(2::double precision)) END
    FROM (SELECT (x1 + x2)::double precision / nullif(n1 + n2, 0) AS pooled) c
$$;

-- The checks experiment_results and experiment_timeline share.
CREATE OR REPLACE FUNCTION tollgate._check_experiment(p_feature text, p_since timestamptz, p_until timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  PERFORM tollgate._check_text('feature', p_feature, 63);
  IF p_since IS NULL OR p_until IS NULL OR p_since > p_until OR NOT pg_catalog.isfinite(p_since)
     OR NOT pg_catalog.isfinite(p_until) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'since and until must be finite times with since <= until',
      HINT = 'For the last 30 days: tollgate.experiment_results(''api_calls'', now() - interval ''30 days'', now()).';
  END IF;
END
$$;

-- Each customer of the experiment: the variant of their first limit_reached
-- event of the feature in [since, until) on the default plan, when, and
-- whether they were prompted (an email for one of those events went out, or
-- they clicked), clicked an upgrade link of the feature, and converted after
-- it (converted_at: the first conversion since).
CREATE OR REPLACE FUNCTION tollgate._experiment_cohort(p_feature text, p_since timestamptz, p_until timestamptz)
RETURNS TABLE (customer text, variant text, first_at timestamptz, prompted boolean, clicked boolean,
               converted_at timestamptz)
LANGUAGE sql STABLE
AS $$
  WITH c AS (
    SELECT e.customer, (pg_catalog.array_agg(e.variant ORDER BY e.created_at, e.id))[1] AS variant,
           min(e.created_at) AS first_at, pg_catalog.array_agg(e.id) AS events
      FROM tollgate.events e
     WHERE e.feature = p_feature AND e.kind = 'limit_reached' AND e.created_at >= p_since AND e.created_at < p_until
       AND e.variant IS NOT NULL AND e.plan = (SELECT p.plan FROM tollgate.plans p WHERE p.is_default)
     GROUP BY e.customer
  ), x AS (
    SELECT c.customer, c.variant, c.first_at,
           EXISTS (SELECT FROM tollgate.emails m
                    WHERE m.customer = c.customer AND m.status = 'sent' AND m.sent_at >= c.first_at
                      AND m.event_id = ANY (c.events)) AS emailed,
           EXISTS (SELECT FROM tollgate.link_clicks k
                    WHERE k.customer = c.customer AND k.feature = p_feature AND k.clicked_at >= c.first_at) AS clicked,
           (SELECT min(pc.changed_at) FROM tollgate.plan_changes pc
             WHERE pc.customer = c.customer AND pc.kind = 'conversion' AND pc.changed_at >= c.first_at) AS converted_at
      FROM c
  )
  SELECT x.customer, x.variant, x.first_at, x.emailed OR x.clicked, x.clicked, x.converted_at FROM x
$$;

CREATE OR REPLACE FUNCTION tollgate.experiment_results(feature text, since timestamptz, until timestamptz)
RETURNS TABLE (
  variant         text,
  weight          integer,
  hit_limit       bigint,
  prompted        bigint,
  clicked         bigint,
  converted       bigint,
  conversion_rate double precision,
  rate_low        double precision,
  rate_high       double precision,
  difference      double precision,
  p_value         double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp SET jit = off
AS $$
#variable_conflict use_column
DECLARE
  v_feature text := $1;
  v_since timestamptz := $2;
  v_until timestamptz := $3;
BEGIN
  PERFORM tollgate._check_experiment(v_feature, v_since, v_until);
  RETURN QUERY
  WITH agg AS (
    SELECT c.variant, count(*) AS n, count(*) FILTER (WHERE c.prompted) AS prompted,
           count(*) FILTER (WHERE c.clicked) AS clicked, count(*) FILTER (WHERE c.converted_at IS NOT NULL) AS x
      FROM tollgate._experiment_cohort(v_feature, v_since, v_until) c
     GROUP BY c.variant
  ), v AS (
    -- the variants defined now, and those of the range that are not any more
    SELECT pv.variant, pv.weight FROM tollgate.prompt_variants pv WHERE pv.feature = v_feature
    UNION ALL
    SELECT a.variant, NULL FROM agg a
     WHERE NOT EXISTS (SELECT FROM tollgate.prompt_variants pv WHERE pv.feature = v_feature AND pv.variant = a.variant)
  ), r AS (
    SELECT v.variant, v.weight, coalesce(a.n, 0) AS n, coalesce(a.prompted, 0) AS prompted,
           coalesce(a.clicked, 0) AS clicked, coalesce(a.x, 0) AS x
      FROM v LEFT JOIN agg a ON a.variant = v.variant
  ), ctl AS (
    SELECT r.n, r.x FROM r WHERE r.variant = 'control'
  )
  SELECT r.variant, r.weight, r.n, r.prompted, r.clicked, r.x,
         r.x::double precision / nullif(r.n, 0), tollgate._wilson(r.x, r.n, false), tollgate._wilson(r.x, r.n, true),
         CASE WHEN r.variant <> 'control' AND r.n > 0 AND ctl.n > 0
              THEN r.x::double precision / r.n - ctl.x::double precision / ctl.n END,
         CASE WHEN r.variant <> 'control' THEN tollgate._two_proportion_p(r.x, r.n, ctl.x, ctl.n) END
    FROM r LEFT JOIN ctl ON true
   ORDER BY r.variant <> 'control', r.variant;
END
$$;
COMMENT ON FUNCTION tollgate.experiment_results(text, timestamptz, timestamptz) IS
  'The prompt experiment of feature over the customers on the default plan whose first limit_reached event of it '
  'in [since, until) carried a variant: one row per variant (control first; the variants defined now, with their '
  'weight, and those of the range that are not any more, weight NULL). hit_limit: customers assigned the variant; '
  'prompted: were sent its email, or clicked an upgrade link; clicked: clicked an upgrade link of the feature; '
  'converted: moved to a paid plan afterwards, whenever; conversion_rate: converted / hit_limit, with rate_low and '
  'rate_high its 95% Wilson interval; difference: its rate minus control''s; p_value: the two-sided p-value of a '
  'pooled two-proportion z-test against control (NULL for control, or without customers on a side). Errors: TG422 '
  'for a bad feature name, a NULL or infinite bound or since after until.';

CREATE OR REPLACE FUNCTION tollgate.experiment_timeline(feature text, since timestamptz, until timestamptz, step interval)
RETURNS TABLE (variant text, bucket timestamptz, hit_limit bigint, converted bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp SET jit = off
AS $$
#variable_conflict use_column
DECLARE
  v_feature text := $1;
  v_since timestamptz := $2;
  v_until timestamptz := $3;
  v_step double precision;
BEGIN
  PERFORM tollgate._check_experiment(v_feature, v_since, v_until);
  IF $4 IS NULL OR $4 < interval '1 hour' OR $4 > interval '366 days'
     OR EXTRACT(epoch FROM v_until - v_since) / EXTRACT(epoch FROM $4) > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'step must be from 1 hour to 366 days, and cut the range into at most 1000 buckets';
  END IF;
  v_step := EXTRACT(epoch FROM $4);
  RETURN QUERY
  WITH c AS (
    SELECT * FROM tollgate._experiment_cohort(v_feature, v_since, v_until)
  ), ev AS (
    SELECT c.variant, c.first_at AS at, 1 AS hit, 0 AS conv FROM c
    UNION ALL
    SELECT c.variant, c.converted_at, 0, 1 FROM c WHERE c.converted_at < v_until
  )
  SELECT ev.variant,
         v_since + pg_catalog.floor(EXTRACT(epoch FROM ev.at - v_since) / v_step) * v_step * interval '1 second',
         sum(ev.hit)::bigint, sum(ev.conv)::bigint
    FROM ev
   GROUP BY 1, 2
   ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION tollgate.experiment_timeline(text, timestamptz, timestamptz, interval) IS
  'The prompt experiment of feature over time, for a chart: per variant and bucket of step from since (only '
  'buckets with something in them), the customers of experiment_results whose first limit_reached event of the '
  'range fell in it (hit_limit), and those whose conversion did (converted; conversions after until are left out). '
  'Summed up to a bucket, they give the conversion rate as it stood then. Errors: TG422 as experiment_results, and '
  'for a step under 1 hour, over 366 days or of more than 1000 buckets.';

GRANT EXECUTE ON FUNCTION tollgate.experiment_results(text, timestamptz, timestamptz),
  tollgate.experiment_timeline(text, timestamptz, timestamptz, interval) TO tollgate_sidecar;
