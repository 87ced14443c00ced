-- What a Citus cluster runs instead of the code package's version of a
-- function (internal/citus, docs/scaling.md). Apply installs it after the
-- package, in the package's transaction, every time the package is installed.
-- Only functions the package defines are replaced here (the package's prune
-- would drop any other), with the same signature (TestOverridesReplaceOnly).
--
-- Each override names the package file it was written against with that
-- file's sha256: when the file changes, TestOverridesFollowThePackage fails
-- until the change is ported here and the sha256 updated.

-- The configuration's version on a cluster. plans, features and limits are
-- reference tables: a change is applied to their copy on every node in one
-- distributed transaction, and this trigger fires on each copy. Each bumps
-- its own node's copy of config_state, so the copies stay equal. (Updating
-- tollgate.config_state itself from a trigger on a copy would be a
-- distributed statement nested in another, which Citus refuses.)
-- replaces tollgate._bump_config_version of sql/config_version.sql sha256 5c3f4384b2eaf11884079bb8b829790a67ab0c9585203ce8f4cb243c344f6ac0
CREATE OR REPLACE FUNCTION tollgate._bump_config_version()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
  v_copy text;
BEGIN
  SELECT pg_catalog.format('tollgate.%I', 'config_state_' || s.shardid) INTO v_copy
    FROM pg_catalog.pg_dist_shard s
   WHERE s.logicalrelid = 'tollgate.config_state'::pg_catalog.regclass;
  IF v_copy IS NULL THEN
    RAISE EXCEPTION 'tollgate.config_state is not a reference table: run tollgate migrate --citus';
  END IF;
  EXECUTE 'UPDATE ' || v_copy || ' SET version = version + 1';
  RETURN NULL;
END
$$;

-- outbox_collect on a cluster: events are spread over the workers, and no
-- statement can lock rows of several shards (FOR UPDATE SKIP LOCKED). The
-- unprocessed events are listed without a lock, then each is processed on
-- its customer's worker by statements that check processed_at again under the
-- row's lock: replicas collecting at once process each event once, and the
-- unique key of emails keeps one email per customer, feature and window.
-- replaces tollgate.outbox_collect of sql/email_collect.sql sha256 a8e08c84024314a8555938fb037243ba585e00952953a56fae17e5af1ab563c8
CREATE OR REPLACE FUNCTION tollgate.outbox_collect(max_events integer DEFAULT 500)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_n integer := 0;
  v_customer text;
  v_id bigint;
  v_kind text;
  v_feature text;
  v_start timestamptz;
  v_template text;
  v_email text;
  v_opt_out boolean;
  v_trial_prompt text;
  v_variant text;
BEGIN
  IF max_events IS NULL OR max_events < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('max_events must be a positive integer, not %s', coalesce(max_events::text, 'NULL'));
  END IF;
  SELECT nullif(st.value, '') INTO v_trial_prompt FROM tollgate.settings st WHERE st.key = 'trial_prompt';
  FOR v_customer, v_id IN
    SELECT e.customer, e.id FROM tollgate.events e WHERE e.processed_at IS NULL ORDER BY e.id LIMIT max_events
  LOOP
    UPDATE tollgate.events e SET processed_at = pg_catalog.now()
     WHERE e.customer = v_customer AND e.id = v_id AND e.processed_at IS NULL
    RETURNING e.kind, e.feature, e.period_start, e.variant INTO v_kind, v_feature, v_start, v_variant;
    CONTINUE WHEN NOT FOUND; -- another replica took it
    v_n := v_n + 1;
    -- a limit event becomes the feature's upgrade prompt; a trial_will_end
    -- event the trial prompt (the setting trial_prompt), once per trial; a
    -- prompt variant's own template, else the feature's
    v_template := NULL;
    IF v_kind = 'limit_reached' THEN
      SELECT coalesce(pv.email, f.upgrade_prompt) INTO v_template
        FROM tollgate.features f
        LEFT JOIN tollgate.prompt_variants pv ON pv.feature = f.feature AND pv.variant = v_variant
       WHERE f.feature = v_feature;
    ELSIF v_kind = 'trial_will_end' THEN
      v_template := v_trial_prompt;
    END IF;
    CONTINUE WHEN v_template IS NULL;
    SELECT c.email, c.email_opt_out INTO v_email, v_opt_out FROM tollgate.customers c WHERE c.customer = v_customer;
    INSERT INTO tollgate.emails AS m (event_id, customer, feature, period_start, template, to_email, status, last_error, variant)
    VALUES (v_id, v_customer, v_feature, v_start, v_template, v_email,
            CASE WHEN v_email IS NULL OR v_opt_out THEN 'skipped' ELSE 'pending' END,
            CASE WHEN v_email IS NULL THEN 'the customer has no email address'
                 WHEN v_opt_out THEN 'the customer opted out of upgrade prompts' END,
            v_variant)
    ON CONFLICT (customer, feature, period_start) DO NOTHING;
  END LOOP;
  RETURN v_n;
END
$$;

-- outbox_claim on a cluster: as outbox_collect, due emails are listed without
-- a lock, and each is claimed on its customer's worker with FOR UPDATE SKIP
-- LOCKED and its due conditions checked again. Whether the worker of a
-- running claim is alive is asked here, on the coordinator, where workers
-- hold their liveness lock (tollgate.outbox_register): a statement sent to a
-- worker would ask that worker's locks.
-- replaces tollgate.outbox_claim of sql/email_claim.sql sha256 9a7ec81f51d98b42d72eb25bc8e90c0fae184c8beb13243dcbebde1ff389339e
CREATE OR REPLACE FUNCTION tollgate.outbox_claim(worker text, n integer DEFAULT 1, stale interval DEFAULT '5 minutes')
RETURNS TABLE (
  id              bigint,
  attempt         integer,
  interrupted     boolean,
  last_provider   text,
  template        text,
  customer        text,
  to_email        text,
  feature         text,
  plan            text,
  used            bigint,
  quota           bigint,
  period_start    timestamptz,
  resets_at       timestamptz,
  message         text,
  event_at        timestamptz,
  sender          text,
  subject         text,
  body_text       text,
  body_html       text,
  event_id        bigint,
  variant         text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_worker text := $1;
  v_n integer := $2;
  v_stale interval := $3;
  v_claimed integer := 0;
  v_after_at timestamptz := '-infinity';
  v_after_id bigint := -9223372036854775808;
  v_batch integer;
  v_seen integer;
  v_status text;
  v_email text;
  v_opt_out boolean;
  c record;
BEGIN
  IF v_worker IS NULL OR v_worker = '' OR pg_catalog.length(v_worker) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'worker must be a text of 1 to 255 characters';
  END IF;
  IF v_n IS NULL OR v_n < 1 OR v_n > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('n must be from 1 to 10000, not %s', coalesce(v_n::text, 'NULL'));
  END IF;
  IF v_stale IS NULL OR v_stale <= interval '0' OR v_stale > interval '366 days' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('stale must be a positive interval of at most 366 days, not %s',
                                  coalesce(v_stale::text, 'NULL'));
  END IF;

  v_batch := least(v_n, 1000) + 16;
  LOOP
    v_seen := 0;
    FOR c IN
      SELECT m.id, m.customer, m.status, m.claimed_by, m.claimed_at, m.next_attempt_at
        FROM tollgate.emails m
       WHERE m.status IN ('pending', 'failed', 'sending')
         AND m.next_attempt_at <= pg_catalog.now()
         AND (m.next_attempt_at, m.id) > (v_after_at, v_after_id)
       ORDER BY m.next_attempt_at, m.id
       LIMIT v_batch
    LOOP
      v_seen := v_seen + 1;
      v_after_at := c.next_attempt_at;
      v_after_id := c.id;
      -- a running claim is taken over only when its worker is gone or it is stale
      CONTINUE WHEN c.status = 'sending' AND NOT c.claimed_at < pg_catalog.now() - v_stale
                AND (c.claimed_by = v_worker OR NOT tollgate._outbox_worker_gone(c.claimed_by));
      PERFORM 1 FROM tollgate.emails m
        WHERE m.customer = c.customer AND m.id = c.id
          AND m.status IN ('pending', 'failed', 'sending')
          AND m.next_attempt_at <= pg_catalog.now()
          AND (m.status <> 'sending' OR m.claimed_at < pg_catalog.now() - v_stale
               OR (m.claimed_by IS NOT DISTINCT FROM c.claimed_by AND m.claimed_at IS NOT DISTINCT FROM c.claimed_at))
        FOR UPDATE OF m SKIP LOCKED;
      CONTINUE WHEN NOT FOUND;
      -- The customer's address and opt-out are read again now: an opt-out or a
      -- removed address since collection skips the email, unless an earlier
      -- attempt already handed it off (then it is finished as it began).
      SELECT cu.email, cu.email_opt_out INTO v_email, v_opt_out FROM tollgate.customers cu WHERE cu.customer = c.customer;
      UPDATE tollgate.emails m
         SET status = CASE WHEN m.handed_off_at IS NULL AND (v_email IS NULL OR v_opt_out)
                           THEN 'skipped' ELSE 'sending' END,
             last_error = CASE WHEN m.handed_off_at IS NOT NULL THEN m.last_error
                               WHEN v_email IS NULL THEN 'the customer has no email address'
                               WHEN v_opt_out THEN 'the customer opted out of upgrade prompts'
                               ELSE m.last_error END,
             to_email = CASE WHEN m.subject IS NULL THEN v_email ELSE m.to_email END,
             attempts = m.attempts + 1,
             claimed_by = v_worker,
             claimed_at = pg_catalog.now()
       WHERE m.customer = c.customer AND m.id = c.id
      RETURNING m.status INTO v_status;
      v_claimed := v_claimed + 1;
      IF v_status = 'sending' THEN
        RETURN QUERY
        SELECT m.id, m.attempts, m.handed_off_at IS NOT NULL, m.provider, m.template, m.customer, m.to_email,
               m.feature, e.plan, e.used, e.quota, m.period_start, e.period_end, coalesce(pv.message, f.message),
               e.created_at, m.sender, m.subject, m.body_text, m.body_html, m.event_id, m.variant
          FROM tollgate.emails m
          JOIN tollgate.events e ON e.customer = m.customer AND e.id = m.event_id
          LEFT JOIN tollgate.features f ON f.feature = m.feature
          LEFT JOIN tollgate.prompt_variants pv ON pv.feature = m.feature AND pv.variant = m.variant
         WHERE m.customer = c.customer AND m.id = c.id;
      END IF;
      EXIT WHEN v_claimed >= v_n;
    END LOOP;
    EXIT WHEN v_claimed >= v_n OR v_seen < v_batch;
  END LOOP;
END
$$;

-- funnel on a cluster: Citus runs no GROUPING SETS over distributed tables.
-- The rows of the range are read from the workers first (the MATERIALIZED
-- CTEs: one pass each), then counted as the single-node function counts them,
-- on the coordinator.
-- replaces tollgate.funnel of sql/funnel.sql sha256 6aa106766612ec2c683fd34697a21230bf132a15116764b526d1c07b018d8a21
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
  WITH ev AS MATERIALIZED (
    SELECT e.id, e.customer, e.feature, e.kind, e.created_at
      FROM tollgate.events e
     WHERE e.created_at >= v_since AND e.created_at < v_until AND e.plan = v_default
  ), sent AS MATERIALIZED (
    SELECT m.customer, m.event_id
      FROM tollgate.emails m
     WHERE m.status = 'sent' AND m.sent_at >= v_since
  ), conv AS MATERIALIZED (
    SELECT pc.customer, pc.event_id, pc.feature, pc.changed_at, pc.prompted_at, pc.click_id
      FROM tollgate.plan_changes pc
     WHERE pc.kind = 'conversion' AND pc.changed_at >= v_since
  ), clicks AS MATERIALIZED (
    SELECT DISTINCT k.customer, k.feature FROM tollgate.link_clicks k WHERE k.clicked_at >= v_since
  ), cohort AS (
    SELECT e.feature, GROUPING(e.feature) = 1 AS total,
           bool_or(e.kind = 'limit_reached') AS hit_limit,
           bool_or(m.event_id IS NOT NULL OR (k.customer IS NOT NULL AND e.kind = 'limit_reached')) AS prompted,
           bool_or(k.customer IS NOT NULL AND e.kind = 'limit_reached') AS clicked
      FROM ev e
      LEFT JOIN sent m ON m.customer = e.customer AND m.event_id = e.id
      LEFT JOIN clicks k ON k.customer = e.customer AND k.feature = e.feature
     GROUP BY GROUPING SETS ((e.feature, e.customer), (e.customer))
  ), c_agg AS (
    SELECT c.feature, count(*) AS hit_threshold, count(*) FILTER (WHERE c.hit_limit) AS hit_limit,
           count(*) FILTER (WHERE c.prompted) AS prompted, count(*) FILTER (WHERE c.clicked) AS clicked
      FROM cohort c
     GROUP BY c.feature, c.total
  ), converted AS (
    SELECT e.feature, pc.customer, extract(epoch FROM pc.changed_at - pc.prompted_at)::double precision AS seconds
      FROM conv pc
     CROSS JOIN LATERAL (
        SELECT e.feature FROM ev e WHERE e.customer = pc.customer AND e.id = pc.event_id LIMIT 1) e
     WHERE pc.event_id IS NOT NULL
    UNION ALL
    SELECT e.feature, pc.customer, extract(epoch FROM pc.changed_at - pc.prompted_at)::double precision
      FROM conv pc
     CROSS JOIN LATERAL (
        SELECT e.feature FROM ev e WHERE e.customer = pc.customer AND e.feature = pc.feature LIMIT 1) e
     WHERE pc.event_id IS NULL AND pc.click_id IS NOT NULL
    UNION ALL
    SELECT f.feature, pc.customer, NULL
      FROM conv pc
      LEFT JOIN LATERAL (
        SELECT DISTINCT e.feature FROM ev e
         WHERE e.customer = pc.customer AND e.created_at <= pc.changed_at) f ON true
     WHERE pc.feature IS NULL AND pc.changed_at < v_until
  ), v_agg AS (
    SELECT v.feature, GROUPING(v.feature) = 1 AS total,
           count(DISTINCT v.customer) AS converted,
           count(DISTINCT v.customer) FILTER (WHERE v.seconds IS NOT NULL) AS attributed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY v.seconds) AS median_seconds,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY v.seconds) AS p90_seconds
      FROM converted v
     GROUP BY GROUPING SETS ((v.feature), ())
  )
  SELECT c.feature, coalesce(c.hit_threshold, 0), coalesce(c.hit_limit, 0), coalesce(c.prompted, 0),
         coalesce(c.clicked, 0), coalesce(v.converted, 0), coalesce(v.attributed, 0), coalesce(v.converted - v.attributed, 0),
         coalesce(v.attributed, 0)::double precision / nullif(c.prompted, 0),
         v.median_seconds, v.p90_seconds
    FROM (SELECT * FROM v_agg WHERE v_agg.total OR v_agg.feature IS NOT NULL) v
    FULL JOIN c_agg c ON coalesce(c.feature, '') = CASE WHEN v.total THEN '' ELSE v.feature END
   ORDER BY c.feature IS NULL, c.feature;
END
$$;
