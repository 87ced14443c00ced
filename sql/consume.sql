CREATE OR REPLACE FUNCTION tollgate.consume(customer text, feature text, amount bigint DEFAULT 1)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN tollgate._consume($1, $2, $3, now());
END
$$;
COMMENT ON FUNCTION tollgate.consume(text, text, bigint) IS
  'Counts amount of feature for customer in the current window if the plan''s limit allows, atomically and '
  'exactly under any concurrency. A blocked call (hard limit) counts nothing and returns allowed = false with '
  'the upgrade message; a soft limit allows the call and records the overage. Runs inside the caller''s '
  'transaction: a rollback gives the usage back and drops any event. A customer seen for the first time is '
  'registered on the default plan. Under a hard limit, units past the window''s quota are spent from the '
  'customer''s grants (tollgate.grant, top-up packs) while they last. Errors: TG404 unknown feature, TG422 '
  'invalid argument (customer empty or over 255 characters, feature over 63, amount not positive, or a soft or '
  'unlimited count that would pass 9223372036854775807).';

-- consume at p_at (the public function passes now(); tests, as the owner,
-- pass other times: no setting an app role could SET moves tollgate's clock).
--
-- The hot paths need a usage row of the current window whose copy of the
-- configuration is current (its config_version and plan_epoch):
--   1. a limited feature: one UPDATE whose WHERE clause is the limit check.
--      Exact under any concurrency: a concurrent update makes PostgreSQL
--      re-check the clause on the new row, and a row at its limit is neither
--      matched nor locked;
--   2. an unlimited feature: one upsert of the backend's shard;
--   3. a customer blocked in this window whose event is written: a plain read.
-- Everything else takes the full path (_consume_locked).
CREATE OR REPLACE FUNCTION tollgate._consume(p_customer text, p_feature text, p_amount bigint, p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  r tollgate.usage;
  v_mark bigint;
BEGIN
  IF tollgate._bad_args(p_customer, p_feature, p_amount) THEN
    PERFORM tollgate._check_args(p_customer, p_feature, p_amount);
  END IF;

  UPDATE tollgate.usage u SET used = u.used + p_amount
    FROM tollgate.customers c
   WHERE u.customer = p_customer AND u.feature = p_feature AND u.valid_until > p_at
     AND c.customer = p_customer AND c.plan_epoch = u.plan_epoch
     AND u.config_version = (SELECT cs.version FROM tollgate.config_state cs)
     AND u.quota IS NOT NULL
     AND p_amount <= CASE WHEN u.soft THEN 9223372036854775807 - u.used ELSE u.quota - u.used END
  RETURNING u.* INTO r;
  IF FOUND THEN
    IF r.used >= r.next_mark THEN
      -- _crossed (it writes events) is called first and its result stored:
      -- Citus refuses a volatile function inside an UPDATE of a distributed table
      v_mark := tollgate._crossed(p_customer, p_feature, r.plan, r.used - p_amount, r.used, r.quota,
                                  r.soft, r.window_start, r.window_end, p_at);
      UPDATE tollgate.usage u SET next_mark = v_mark
       WHERE u.customer = p_customer AND u.feature = p_feature;
    END IF;
    RETURN tollgate._verdict(true, p_customer, p_feature, r.plan, r.used, r.quota, r.window_end, r.granted);
  END IF;

  SELECT u.* INTO r
    FROM tollgate.usage u
    JOIN tollgate.customers c ON c.customer = u.customer AND c.plan_epoch = u.plan_epoch
   WHERE u.customer = p_customer AND u.feature = p_feature AND u.valid_until > p_at
     AND u.config_version = (SELECT cs.version FROM tollgate.config_state cs);
  IF FOUND AND r.quota IS NULL THEN
    INSERT INTO tollgate.usage_shards AS s (customer, feature, window_start, shard, used)
    VALUES (p_customer, p_feature, r.window_start, tollgate._shard(), p_amount)
    ON CONFLICT (customer, feature, window_start, shard) DO UPDATE SET used = s.used + EXCLUDED.used
     WHERE s.used <= 9223372036854775807 - EXCLUDED.used;
    IF FOUND THEN
      RETURN tollgate._verdict(true, p_customer, p_feature, r.plan, tollgate._total(r), NULL, r.window_end, NULL);
    END IF;
  ELSIF FOUND AND r.limit_hit AND NOT r.soft AND p_amount > greatest(r.quota - r.used, 0)::numeric + r.granted THEN
    RETURN tollgate._verdict(false, p_customer, p_feature, r.plan, r.used, r.quota, r.window_end, r.granted);
  END IF;

  RETURN tollgate._consume_locked(p_customer, p_feature, p_amount, p_at);
END
$$;

-- The full path of consume: decides on the locked, current usage row. Under
-- a hard limit, units past the window's quota are spent from grants.
CREATE OR REPLACE FUNCTION tollgate._consume_locked(p_customer text, p_feature text, p_amount bigint, p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  r tollgate.usage := tollgate._usage_row(p_customer, p_feature, p_at, true);
  v_old bigint := r.used;
  v_spend bigint;
BEGIN
  IF r.window_end = '-infinity' THEN
    RETURN tollgate._consume_rolling(r, p_amount, p_at);
  END IF;
  IF r.quota IS NOT NULL AND NOT r.soft AND p_amount > greatest(r.quota - r.used, 0)::numeric + r.granted THEN
    RETURN tollgate._block(r, p_amount, p_at);
  END IF;
  PERFORM tollgate._check_room(r.used, p_amount);
  r.used := r.used + p_amount;
  IF r.quota IS NOT NULL AND NOT r.soft AND r.used > r.quota THEN
    v_spend := r.used - greatest(v_old, r.quota);
    PERFORM tollgate._spend_grants(p_customer, p_feature, v_spend, p_at);
    r.granted := r.granted - v_spend;
  END IF;
  IF r.quota IS NOT NULL THEN
    r.next_mark := tollgate._crossed(p_customer, p_feature, r.plan, v_old, r.used, r.quota, r.soft,
                                     r.window_start, r.window_end, p_at);
  END IF;
  PERFORM tollgate._save_usage(r);
  RETURN tollgate._verdict(true, p_customer, p_feature, r.plan,
                           CASE WHEN r.quota IS NULL THEN tollgate._total(r) ELSE r.used END, r.quota, r.window_end,
                           r.granted);
END
$$;

-- A blocked call of a fixed window (r is the locked, current usage row): the
-- first one of the window that prompts (_prompts) writes limit_reached, and
-- marks the row so later blocked calls are answered by a plain read.
CREATE OR REPLACE FUNCTION tollgate._block(r tollgate.usage, p_amount bigint, p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
BEGIN
  IF NOT r.limit_hit AND tollgate._prompts(p_amount, r.quota, r.granted) THEN
    r.limit_hit := true;
    PERFORM tollgate._emit('limit_reached', r.customer, r.feature, r.plan, r.used, r.quota, 100,
                           r.window_start, nullif(r.window_end, 'infinity'), p_at);
    PERFORM tollgate._save_usage(r);
  END IF;
  RETURN tollgate._verdict(false, r.customer, r.feature, r.plan, r.used, r.quota, r.window_end, r.granted);
END
$$;

-- Soft and unlimited counts have no quota to stop them: a count that would
-- pass the largest bigint is refused with TG422. (An unlimited row's own count
-- may be below 0 after refunds of units counted on its shards.)
CREATE OR REPLACE FUNCTION tollgate._check_room(p_used bigint, p_amount bigint)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF p_amount > 9223372036854775807 - greatest(p_used, 0) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('amount %s would take usage past the largest count, 9223372036854775807', p_amount);
  END IF;
END
$$;
