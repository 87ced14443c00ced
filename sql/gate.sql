-- The heart of tollgate: one call of consume, check or refund at time p_at.
--
-- p_mode: 'consume' counts p_amount if the limit allows (hard) or always (soft);
--         'check'   answers the same question and changes nothing;
--         'refund'  gives p_amount back, never below 0;
--         'note'    records a blocked call's limit_reached event (as consume
--                   would) and counts nothing: for callers whose TG402 rolled
--                   the event back (tollgate.note_blocked).
--
-- The hot path is one UPDATE of the customer's usage row, whose WHERE clause
-- is the limit check: exact under any concurrency (a concurrent update makes
-- PostgreSQL re-check the clause on the new row), and a row over the limit is
-- neither matched nor locked. The row carries the plan, quota and next event
-- mark copied from the configuration, so the hot path reads no configuration.
-- A customer already blocked in this window is answered from a plain read.
-- Everything else takes the full path: first call, new window, changed
-- configuration or plan, a threshold crossing, the first blocked call, rolling
-- windows, refunds. Events, and their NOTIFY, happen only on crossings.
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
  v_version bigint;
  v_epoch bigint;
  v_slot timestamptz;   -- rolling windows: the fixed slot of one window length its events are keyed by
  v_start timestamptz;
  v_end timestamptz;
  v_row_start timestamptz;
  v_row_end timestamptz;
  v_row_plan text;
  v_cap bigint;          -- hard limit: the most "used" may be before adding p_amount
  v_used bigint;
  v_old bigint;
  v_next bigint;
  v_hit boolean;
  v_allowed boolean := true;
  v_from timestamptz;    -- rolling windows: buckets after this one count
  v_oldest timestamptz;
  v_bucket timestamptz;
  v_left bigint;
  v_take bigint;
  v_t0 timestamptz;
  v_contended boolean;
  v_slotted boolean;
  v_verdict tollgate.verdict;
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

  IF p_mode = 'consume' THEN
    -- The hot path. A call that waited more than 5 ms for a row another
    -- transaction changed meanwhile (it was not what this statement first
    -- saw) marks the row slotted for the rest of the window (sql/slots.sql).
    v_t0 := clock_timestamp();
    UPDATE tollgate.usage u SET used = u.used + p_amount
      FROM tollgate.customers c
     WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_end > p_at
       AND c.customer = p_customer AND u.plan_epoch = c.plan_epoch
       AND u.config_version = (SELECT s.version FROM tollgate.config_state s)
       AND (u.quota IS NULL OR u.soft OR u.used + p_amount <= u.quota)
       AND NOT u.slotted
    RETURNING u.used, u.quota, u.soft, u.plan, u.window_start, u.window_end, u.next_mark,
              CASE WHEN clock_timestamp() - v_t0 > interval '5 ms'
                   THEN u.used - p_amount IS DISTINCT FROM
                        (SELECT o.used FROM tollgate.usage o WHERE o.customer = p_customer AND o.feature = p_feature)
                   ELSE false END
      INTO v_used, v_quota, v_soft, v_plan, v_start, v_end, v_next, v_contended;
    IF FOUND THEN
      IF v_contended THEN
        UPDATE tollgate.usage u SET slotted = true WHERE u.customer = p_customer AND u.feature = p_feature;
      END IF;
      IF v_used >= v_next THEN
        -- crossed a threshold (soft: the quota); the row is locked already
        SELECT f.notify_at INTO v_notify FROM tollgate.features f WHERE f.feature = p_feature;
        PERFORM tollgate._crossed(p_customer, p_feature, v_plan, v_used - p_amount, v_used, v_quota,
                                  v_soft, v_notify, v_start, v_end, p_at);
        UPDATE tollgate.usage u SET next_mark = tollgate._next_mark(v_used, v_quota, v_soft, v_notify)
         WHERE u.customer = p_customer AND u.feature = p_feature;
      END IF;
      IF v_used > v_quota THEN
        SELECT f.message INTO v_message FROM tollgate.features f WHERE f.feature = p_feature;
      END IF;
      RETURN tollgate._verdict(true, p_customer, p_feature, v_plan, v_used, v_quota, v_end, v_message);
    END IF;

    -- Already blocked in this window, its limit_reached written: a plain
    -- read answers (the committed total, slots included, only grows; a
    -- slot never has room for a call over the quota). Otherwise a slotted
    -- row goes to its slots (sql/slots.sql).
    SELECT u.used + CASE WHEN u.slotted THEN tollgate._slot_used(p_customer, p_feature, u.window_start) ELSE 0 END,
           u.quota, u.plan, u.window_end, f.message, u.slotted,
           u.limit_hit AND NOT u.soft AND u.window_end > p_at
             AND c.plan_epoch = u.plan_epoch AND u.config_version = (SELECT s.version FROM tollgate.config_state s)
      INTO v_used, v_quota, v_plan, v_end, v_message, v_slotted, v_hit
      FROM tollgate.usage u
      JOIN tollgate.features f ON f.feature = u.feature
      JOIN tollgate.customers c ON c.customer = u.customer
     WHERE u.customer = p_customer AND u.feature = p_feature;
    IF v_hit AND v_used + p_amount > v_quota THEN
      RETURN tollgate._verdict(false, p_customer, p_feature, v_plan, v_used, v_quota, v_end, v_message);
    END IF;
  ELSIF p_mode <> 'check' THEN
    SELECT u.slotted INTO v_slotted FROM tollgate.usage u WHERE u.customer = p_customer AND u.feature = p_feature;
  END IF;

  IF v_slotted AND p_mode <> 'check' THEN
    v_verdict := tollgate._gate_slotted(p_customer, p_feature, p_amount, p_mode, p_at);
    IF v_verdict.customer IS NOT NULL THEN
      RETURN v_verdict;
    END IF;
  END IF;

  IF p_mode = 'check' THEN
    -- A current usage row answers without the configuration.
    SELECT u.used + CASE WHEN u.slotted THEN tollgate._slot_used(p_customer, p_feature, u.window_start) ELSE 0 END,
           u.quota, u.plan, u.window_end, u.soft, f.message
      INTO v_used, v_quota, v_plan, v_end, v_soft, v_message
      FROM tollgate.usage u
      JOIN tollgate.features f ON f.feature = u.feature
      JOIN tollgate.customers c ON c.customer = u.customer AND c.plan_epoch = u.plan_epoch
     WHERE u.customer = p_customer AND u.feature = p_feature
       AND u.window_start <= p_at AND u.window_end > p_at
       AND u.config_version = (SELECT s.version FROM tollgate.config_state s);
    IF FOUND THEN
      v_hit := v_used > v_quota OR v_used + p_amount > v_quota;
      RETURN tollgate._verdict(v_soft OR NOT coalesce(v_hit, false), p_customer, p_feature, v_plan, v_used, v_quota,
                               v_end, v_message);
    END IF;
  END IF;

  -- The full path: read the configuration.
  SELECT f.period_unit, f.period_length, f.enforcement = 'soft', f.notify_at, f.message,
         c.customer IS NOT NULL, c.created_at, c.period_start, c.period_end,
         coalesce(c.plan, d.plan), l.plan IS NOT NULL, l.quota, s.version, coalesce(c.plan_epoch, 0)
    INTO v_unit, v_length, v_soft, v_notify, v_message,
         v_known, v_anchor, v_period_start, v_period_end,
         v_plan, v_has_limit, v_quota, v_version, v_epoch
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
  IF v_plan IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404',
      MESSAGE = 'no default plan is defined',
      HINT = 'Define one with tollgate.define_plan(plan, is_default => true).';
  END IF;
  IF NOT v_has_limit THEN
    v_quota := 0; -- the plan does not include this feature
  END IF;

  IF NOT v_known THEN
    IF p_mode IN ('consume', 'note') THEN
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
    -- A sliding window of v_length days, exact to its hour bucket: buckets in
    -- usage_windows, and the usage row (window_end -infinity, so never on the
    -- hot path) serializes this customer's calls and carries limit_hit.
    v_bucket := date_trunc('hour', p_at, 'UTC');
    v_from := v_bucket - make_interval(hours => 24 * v_length);
    -- events of a rolling window are keyed by a fixed slot of one window
    -- length, so a customer hovering at the limit is prompted once per slot,
    -- not each time an old bucket slides out
    v_slot := date_bin(make_interval(hours => 24 * v_length), p_at, timestamptz '2000-01-01 00:00:00+00');
    IF p_mode <> 'check' THEN
      INSERT INTO tollgate.usage AS u (customer, feature, window_start, window_end, plan, soft)
      VALUES (p_customer, p_feature, '-infinity', '-infinity', v_plan, v_soft)
      ON CONFLICT DO NOTHING;
      IF p_mode = 'consume' AND v_cap IS NOT NULL THEN
        -- reject path: a plain read when the event is written already
        SELECT coalesce(sum(w.used), 0) INTO v_used
          FROM tollgate.usage_windows w
         WHERE w.customer = p_customer AND w.feature = p_feature
           AND w.window_start > v_from AND w.window_start <= v_bucket;
        SELECT u.limit_hit INTO v_hit
          FROM tollgate.usage u WHERE u.customer = p_customer AND u.feature = p_feature;
        IF v_used > v_cap AND v_hit THEN
          v_allowed := false;
        END IF;
      END IF;
      IF v_allowed THEN
        SELECT u.limit_hit INTO v_hit
          FROM tollgate.usage u WHERE u.customer = p_customer AND u.feature = p_feature
           FOR UPDATE;
      END IF;
    END IF;
    SELECT coalesce(sum(w.used), 0), min(w.window_start) FILTER (WHERE w.used > 0)
      INTO v_used, v_oldest
      FROM tollgate.usage_windows w
     WHERE w.customer = p_customer AND w.feature = p_feature
       AND w.window_start > v_from AND w.window_start <= v_bucket;
    v_start := v_bucket;
    v_end := coalesce(v_oldest, v_bucket) + make_interval(hours => 24 * v_length);

    IF p_mode = 'check' OR NOT v_allowed THEN
      v_allowed := v_allowed AND (v_cap IS NULL OR v_used <= v_cap);
    ELSIF p_mode = 'refund' THEN
      -- give back from the newest buckets first
      v_left := p_amount;
      FOR v_oldest, v_take IN
        SELECT w.window_start, w.used
          FROM tollgate.usage_windows w
         WHERE w.customer = p_customer AND w.feature = p_feature
           AND w.window_start > v_from AND w.window_start <= v_bucket AND w.used > 0
         ORDER BY w.window_start DESC
      LOOP
        EXIT WHEN v_left = 0;
        v_take := least(v_take, v_left);
        UPDATE tollgate.usage_windows w SET used = w.used - v_take
         WHERE w.customer = p_customer AND w.feature = p_feature AND w.window_start = v_oldest;
        v_left := v_left - v_take;
        v_used := v_used - v_take;
      END LOOP;
      v_allowed := v_cap IS NULL OR v_used < v_quota;
    ELSIF v_cap IS NOT NULL AND v_used > v_cap THEN
      v_allowed := false;
      IF NOT coalesce(v_hit, false) THEN
        UPDATE tollgate.usage u SET limit_hit = true WHERE u.customer = p_customer AND u.feature = p_feature;
        PERFORM tollgate._emit('limit_reached', p_customer, p_feature, v_plan, v_used, v_quota, 100, v_slot, NULL, p_at);
      END IF;
    ELSIF p_mode = 'note' THEN
      NULL; -- not blocked: nothing to record, nothing to count
    ELSE
      INSERT INTO tollgate.usage_windows AS w (customer, feature, window_start, window_end, used, plan)
      VALUES (p_customer, p_feature, v_bucket, v_bucket + interval '1 hour', p_amount, v_plan)
      ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = w.used + p_amount;
      IF v_hit THEN
        UPDATE tollgate.usage u SET limit_hit = false WHERE u.customer = p_customer AND u.feature = p_feature;
      END IF;
      v_used := v_used + p_amount;
      IF v_oldest IS NULL THEN
        v_end := v_bucket + make_interval(hours => 24 * v_length);
      END IF;
      IF v_quota IS NOT NULL THEN
        PERFORM tollgate._crossed(p_customer, p_feature, v_plan, v_used - p_amount, v_used, v_quota,
                                  v_soft, v_notify, v_slot, v_end, p_at);
      END IF;
    END IF;
    RETURN tollgate._verdict(v_allowed, p_customer, p_feature, v_plan, v_used, v_quota, v_end, v_message);
  END IF;

  v_start := tollgate._window_start(v_unit, v_length, p_at, v_anchor, v_period_start, v_period_end);
  v_end := coalesce(tollgate._window_end(v_unit, v_length, p_at, v_anchor, v_period_start, v_period_end), 'infinity');

  IF p_mode = 'check' THEN
    SELECT u.window_start,
           u.used + CASE WHEN u.slotted THEN tollgate._slot_used(p_customer, p_feature, u.window_start) ELSE 0 END
      INTO v_row_start, v_used
      FROM tollgate.usage u WHERE u.customer = p_customer AND u.feature = p_feature;
    IF v_row_start > v_start THEN
      -- a closed window
      SELECT w.used INTO v_used
        FROM tollgate.usage_windows w
       WHERE w.customer = p_customer AND w.feature = p_feature AND w.window_start = v_start;
    ELSIF v_row_start < v_start THEN
      v_used := 0; -- the row's window is over
    END IF;
    v_used := coalesce(v_used, 0);
    v_allowed := v_cap IS NULL OR v_used <= v_cap;
    RETURN tollgate._verdict(v_allowed, p_customer, p_feature, v_plan, v_used, v_quota, v_end, v_message);
  END IF;

  IF p_mode IN ('consume', 'note') THEN
    INSERT INTO tollgate.usage AS u (customer, feature, window_start, window_end, plan, quota, soft)
    VALUES (p_customer, p_feature, v_start, v_end, v_plan, v_quota, v_soft)
    ON CONFLICT DO NOTHING;
  END IF;
  SELECT u.window_start, u.window_end, u.plan, u.used, u.limit_hit, u.slotted, u.next_mark
    INTO v_row_start, v_row_end, v_row_plan, v_used, v_hit, v_slotted, v_next
    FROM tollgate.usage u WHERE u.customer = p_customer AND u.feature = p_feature
     FOR UPDATE;
  IF NOT FOUND THEN
    -- refund for a customer who never used the feature
    RETURN tollgate._verdict(true, p_customer, p_feature, v_plan, 0, v_quota, v_end, v_message);
  END IF;
  IF v_slotted THEN
    -- decide on the exact total: fold the slots into the row
    v_used := tollgate._settle(p_customer, p_feature, v_row_start, v_used);
  END IF;
  IF v_row_start = v_start THEN
    NULL; -- the current window
  ELSIF v_row_start > v_start AND p_at < v_row_start THEN
    -- This transaction began before the window rolled over: it counts in
    -- the current window.
    v_start := v_row_start;
    v_end := v_row_end;
  ELSE
    -- The row's window is over, or the period changed: keep it as history
    -- and start this one.
    IF v_used > 0 OR v_hit THEN
      INSERT INTO tollgate.usage_windows AS w (customer, feature, window_start, window_end, used, plan)
      VALUES (p_customer, p_feature, v_row_start, nullif(v_row_end, 'infinity'), v_used, v_row_plan)
      ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = w.used + EXCLUDED.used;
    END IF;
    v_used := 0;
    v_hit := false;
    v_next := NULL;
    v_slotted := false; -- a new window starts uncontended
  END IF;

  IF p_mode = 'refund' THEN
    v_used := greatest(v_used - p_amount, 0);
    v_allowed := v_cap IS NULL OR v_used < v_quota;
  ELSIF (v_cap IS NULL OR v_used <= v_cap) AND p_mode = 'note' THEN
    NULL; -- not blocked: nothing to record, nothing to count
  ELSIF v_cap IS NULL OR v_used <= v_cap THEN
    v_used := v_used + p_amount;
    IF v_quota IS NOT NULL THEN
      -- from the row's next mark if usage passed it already: a slot's holder
      -- may count past its lease under a soft limit (sql/slots.sql)
      PERFORM tollgate._crossed(p_customer, p_feature, v_plan, least(v_used - p_amount, v_next - 1), v_used,
                                v_quota, v_soft, v_notify, v_start, v_end, p_at);
    END IF;
  ELSE
    v_allowed := false;
    IF NOT v_hit THEN
      -- the first blocked call of this window writes limit_reached, once
      v_hit := true;
      PERFORM tollgate._emit('limit_reached', p_customer, p_feature, v_plan, v_used, v_quota, 100,
                             v_start, nullif(v_end, 'infinity'), p_at);
    END IF;
  END IF;
  UPDATE tollgate.usage u
     SET window_start = v_start, window_end = v_end, used = v_used, limit_hit = v_hit,
         plan = v_plan, quota = v_quota, soft = v_soft,
         next_mark = tollgate._next_mark(v_used, v_quota, v_soft, v_notify),
         config_version = v_version, plan_epoch = v_epoch, slotted = coalesce(v_slotted, false), leased = 0
   WHERE u.customer = p_customer AND u.feature = p_feature;
  RETURN tollgate._verdict(v_allowed, p_customer, p_feature, v_plan, v_used, v_quota, v_end, v_message);
END
$$;
