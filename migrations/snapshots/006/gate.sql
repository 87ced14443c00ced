-- The heart of tollgate: one call of consume, check or refund at time p_at.
--
-- p_mode: 'consume' counts p_amount if the limit allows (hard) or always (soft);
--         'check'   answers the same question and changes nothing;
--         'refund'  gives p_amount back, never below 0.
--
-- The hot path (a known customer, a fixed window, under the limit) is one
-- read of the configuration and one UPDATE whose WHERE clause is the limit
-- check, so the count is exact under any concurrency: a row over the limit
-- does not match and is not locked. A customer already over the limit is
-- answered from a plain read (usage only grows within a window); only the
-- first blocked call of a window takes a lock, to write its limit_reached
-- event once. Events, and their NOTIFY, happen only on threshold crossings.
--
-- Internal: not granted to anyone. The public wrappers pass now(); tests, as
-- the owner, pass other times to cross window boundaries. No setting that an
-- app role could SET moves tollgate's clock.
CREATE OR REPLACE FUNCTION tollgate._gate(
  p_customer text,
  p_feature text,
  p_amount bigint,
  p_mode text,
  p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  v_unit text;
  v_length integer;
  v_soft boolean;
  v_notify integer[];
  v_message text;
  v_known boolean;
  v_anchor timestamptz;
  v_period_start timestamptz;
  v_period_end timestamptz;
  v_plan text;
  v_has_limit boolean;
  v_quota bigint;
  v_start timestamptz;
  v_end timestamptz;
  v_cap bigint;          -- hard limit: the most "used" may be before adding p_amount
  v_used bigint;
  v_old bigint;
  v_hit boolean;
  v_allowed boolean := true;
  v_bucket timestamptz;  -- rolling windows: the current hour bucket
  v_from timestamptz;    -- rolling windows: buckets after this one count
  v_oldest timestamptz;
  v_left bigint;
  v_take bigint;
  v_t integer;
  v_mark bigint;
  v_tries integer := 0;
BEGIN
  IF p_customer IS NULL OR p_customer = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'customer must be a non-empty text',
      HINT = 'Pass the app''s own customer key, for example the user''s primary key as text.';
  END IF;
  IF p_feature IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'feature must not be NULL';
  END IF;
  IF p_amount IS NULL OR p_amount <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('amount must be a positive integer, not %s', coalesce(p_amount::text, 'NULL'));
  END IF;

  SELECT f.period_unit, f.period_length, f.enforcement = 'soft', f.notify_at, f.message,
         c.customer IS NOT NULL, c.created_at, c.period_start, c.period_end,
         coalesce(c.plan, d.plan), l.plan IS NOT NULL, l.quota
    INTO v_unit, v_length, v_soft, v_notify, v_message,
         v_known, v_anchor, v_period_start, v_period_end,
         v_plan, v_has_limit, v_quota
    FROM tollgate.features f
    LEFT JOIN tollgate.customers c ON c.customer = p_customer
    LEFT JOIN tollgate.plans d ON d.is_default
    LEFT JOIN tollgate.limits l ON l.feature = f.feature AND l.plan = coalesce(c.plan, d.plan)
   WHERE f.feature = p_feature;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404',
      MESSAGE = format('unknown feature %L', p_feature),
      HINT = 'Define it with tollgate.define_feature or in tollgate.yaml, then run tollgate apply.';
  END IF;
  IF v_plan IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404',
      MESSAGE = 'no default plan is defined',
      HINT = 'Define one with tollgate.define_plan(plan, is_default => true).';
  END IF;
  IF NOT v_has_limit THEN
    v_quota := 0; -- the plan does not include this feature
  END IF;

  IF NOT v_known THEN
    IF p_mode = 'consume' THEN
      -- First sight of this customer: register it on the default plan. Two
      -- first calls racing both land here; the loser's insert waits for the
      -- winner and does nothing, and both use the winner's sign-up time.
      INSERT INTO tollgate.customers AS c (customer, created_at, updated_at)
      VALUES (p_customer, p_at, p_at)
      ON CONFLICT (customer) DO NOTHING;
      SELECT c.created_at INTO v_anchor FROM tollgate.customers c WHERE c.customer = p_customer;
    END IF;
    v_anchor := coalesce(v_anchor, p_at);
  END IF;

  v_cap := CASE WHEN v_quota IS NULL OR v_soft THEN NULL ELSE v_quota - p_amount END;

  IF v_unit = 'rolling' THEN
    -- A sliding window of v_length days, exact to its hour bucket.
    v_bucket := date_trunc('hour', p_at, 'UTC');
    v_from := v_bucket - make_interval(days => v_length);
    IF p_mode <> 'check' THEN
      -- The row at -infinity serializes this customer's calls on this feature.
      INSERT INTO tollgate.usage (customer, feature, window_start)
      VALUES (p_customer, p_feature, '-infinity')
      ON CONFLICT DO NOTHING;
      IF p_mode = 'consume' AND v_cap IS NOT NULL THEN
        -- reject path: answered from a plain read when the event is written
        SELECT coalesce(sum(u.used), 0) INTO v_used
          FROM tollgate.usage u
         WHERE u.customer = p_customer AND u.feature = p_feature
           AND u.window_start > v_from AND u.window_start <= v_bucket;
        SELECT u.limit_hit INTO v_hit
          FROM tollgate.usage u
         WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = '-infinity';
        IF v_used > v_cap AND v_hit THEN
          v_allowed := false;
        END IF;
      END IF;
      IF v_allowed THEN
        SELECT u.limit_hit INTO v_hit
          FROM tollgate.usage u
         WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = '-infinity'
           FOR UPDATE;
      END IF;
    END IF;
    SELECT coalesce(sum(u.used), 0), min(u.window_start) FILTER (WHERE u.used > 0)
      INTO v_used, v_oldest
      FROM tollgate.usage u
     WHERE u.customer = p_customer AND u.feature = p_feature
       AND u.window_start > v_from AND u.window_start <= v_bucket;
    v_start := v_bucket;
    v_end := coalesce(v_oldest, v_bucket) + make_interval(days => v_length);

    IF p_mode = 'check' OR NOT v_allowed THEN
      v_allowed := v_allowed AND (v_cap IS NULL OR v_used <= v_cap);
    ELSIF p_mode = 'refund' THEN
      -- give back from the newest buckets first
      v_left := p_amount;
      FOR v_oldest, v_take IN
        SELECT u.window_start, u.used
          FROM tollgate.usage u
         WHERE u.customer = p_customer AND u.feature = p_feature
           AND u.window_start > v_from AND u.window_start <= v_bucket AND u.used > 0
         ORDER BY u.window_start DESC
      LOOP
        EXIT WHEN v_left = 0;
        v_take := least(v_take, v_left);
        UPDATE tollgate.usage u SET used = u.used - v_take
         WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = v_oldest;
        v_left := v_left - v_take;
        v_used := v_used - v_take;
      END LOOP;
      v_allowed := v_cap IS NULL OR v_used < v_quota;
    ELSIF v_cap IS NOT NULL AND v_used > v_cap THEN
      v_allowed := false;
      IF NOT v_hit THEN
        UPDATE tollgate.usage u SET limit_hit = true
         WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = '-infinity';
        PERFORM tollgate._emit('limit_reached', p_customer, p_feature, v_plan, v_used, v_quota, 100, v_bucket, NULL, p_at);
      END IF;
    ELSE
      INSERT INTO tollgate.usage AS u (customer, feature, window_start, used)
      VALUES (p_customer, p_feature, v_bucket, p_amount)
      ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = u.used + p_amount;
      IF v_hit THEN
        UPDATE tollgate.usage u SET limit_hit = false
         WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = '-infinity';
      END IF;
      v_used := v_used + p_amount;
      IF v_oldest IS NULL THEN
        v_end := v_bucket + make_interval(days => v_length);
      END IF;
    END IF;
  ELSE
    SELECT w.window_start, w.window_end INTO v_start, v_end
      FROM tollgate._window(v_unit, v_length, p_at, v_anchor, v_period_start, v_period_end) w;

    IF p_mode = 'check' THEN
      SELECT u.used INTO v_used
        FROM tollgate.usage u
       WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = v_start;
      v_used := coalesce(v_used, 0);
      v_allowed := v_cap IS NULL OR v_used <= v_cap;
    ELSIF p_mode = 'refund' THEN
      UPDATE tollgate.usage u SET used = greatest(u.used - p_amount, 0)
       WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = v_start
      RETURNING u.used INTO v_used;
      v_used := coalesce(v_used, 0);
      v_allowed := v_cap IS NULL OR v_used < v_quota;
    ELSE
      LOOP
        v_tries := v_tries + 1;
        -- The allowed path: the limit check is the WHERE clause.
        UPDATE tollgate.usage u SET used = u.used + p_amount
         WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = v_start
           AND (v_cap IS NULL OR u.used <= v_cap)
        RETURNING u.used INTO v_used;
        EXIT WHEN FOUND;

        SELECT u.used, u.limit_hit INTO v_used, v_hit
          FROM tollgate.usage u
         WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = v_start;
        IF NOT FOUND AND (v_cap IS NULL OR v_cap >= 0) THEN
          -- first call of this window
          INSERT INTO tollgate.usage AS u (customer, feature, window_start, used)
          VALUES (p_customer, p_feature, v_start, p_amount)
          ON CONFLICT DO NOTHING
          RETURNING u.used INTO v_used;
          EXIT WHEN FOUND;
          CONTINUE; -- a concurrent first call created the row: count on it
        END IF;

        -- Blocked. Usage only grows within a window, so this read is final
        -- unless a refund makes room, which the recheck below notices.
        v_used := coalesce(v_used, 0);
        IF v_cap IS NULL OR v_used <= v_cap THEN
          -- The row was committed after the UPDATE's snapshot, or a refund
          -- made room between the UPDATE and the read: count again.
          IF v_tries >= 5 THEN
            RAISE EXCEPTION USING ERRCODE = '40001',
              MESSAGE = format('could not count %s for customer %s under contention', p_feature, p_customer),
              HINT = 'Retry the transaction.';
          END IF;
          CONTINUE;
        END IF;
        v_allowed := false;
        IF NOT coalesce(v_hit, false) THEN
          -- The first blocked call of this window marks the row (one lock per
          -- window) and writes limit_reached; racing callers see the mark.
          INSERT INTO tollgate.usage AS u (customer, feature, window_start, used, limit_hit)
          VALUES (p_customer, p_feature, v_start, 0, true)
          ON CONFLICT (customer, feature, window_start) DO UPDATE SET limit_hit = true
           WHERE NOT u.limit_hit AND u.used > v_cap
          RETURNING u.used INTO v_used;
          IF FOUND THEN
            PERFORM tollgate._emit('limit_reached', p_customer, p_feature, v_plan, v_used, v_quota, 100, v_start, v_end, p_at);
          ELSE
            SELECT u.used INTO v_used
              FROM tollgate.usage u
             WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_start = v_start;
            IF v_used <= v_cap THEN
              v_allowed := true;
              CONTINUE; -- a refund made room: the loop's guard bounds this
            END IF;
          END IF;
        END IF;
        EXIT;
      END LOOP;
    END IF;
  END IF;

  IF p_mode = 'consume' AND v_allowed AND v_quota IS NOT NULL THEN
    v_old := v_used - p_amount;
    FOREACH v_t IN ARRAY v_notify LOOP
      v_mark := ceil(v_quota * v_t / 100.0)::bigint;
      IF v_old < v_mark AND v_used >= v_mark THEN
        PERFORM tollgate._emit('threshold', p_customer, p_feature, v_plan, v_used, v_quota, v_t, v_start, v_end, p_at);
      END IF;
    END LOOP;
    IF v_soft AND v_old <= v_quota AND v_used > v_quota THEN
      -- soft enforcement: the first call over the quota is allowed and recorded
      PERFORM tollgate._emit('limit_reached', p_customer, p_feature, v_plan, v_used, v_quota, 100, v_start, v_end, p_at);
    END IF;
  END IF;

  RETURN ROW(
    v_allowed,
    p_customer,
    p_feature,
    v_plan,
    v_used,
    v_quota,
    CASE WHEN v_quota IS NULL THEN NULL ELSE greatest(v_quota - v_used, 0) END,
    v_end,
    CASE WHEN NOT v_allowed OR v_used > v_quota THEN
      coalesce(v_message, format('You have used %s of %s %s on the %s plan. Upgrade to continue.',
                                 v_used, v_quota, p_feature, v_plan))
    END
  )::tollgate.verdict;
END
$$;
