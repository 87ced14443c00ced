-- The prologue of every call that leaves the hot path: lock the customer's
-- usage row for the feature, roll its window, refresh its copy of the
-- configuration (and the grant units left). p_register creates the row (and registers a customer seen
-- for the first time on the default plan); without it a missing row gives
-- NULL. The row returned is current and locked until the caller's
-- transaction ends; the caller decides and saves it with _save_usage.
CREATE OR REPLACE FUNCTION tollgate._usage_row(
  p_customer text, p_feature text, p_at timestamptz, p_register boolean)
RETURNS tollgate.usage
LANGUAGE plpgsql
AS $$
DECLARE
  cfg record;
  r tollgate.usage;
  v_seen tollgate.usage;
  v_start timestamptz := '-infinity'; -- rolling windows: the row only serializes calls
  v_end timestamptz := '-infinity';
BEGIN
  SELECT * INTO cfg FROM tollgate._config(p_customer, p_feature, p_at);
  IF NOT cfg.known AND p_register THEN
    -- Two first calls racing both land here: the loser's insert waits for
    -- the winner's and does nothing, and both use the winner's sign-up time.
    INSERT INTO tollgate.customers AS c (customer, created_at, updated_at)
    VALUES (p_customer, p_at, p_at)
    ON CONFLICT (customer) DO NOTHING;
    SELECT c.created_at INTO cfg.anchor FROM tollgate.customers c WHERE c.customer = p_customer;
  END IF;
  IF cfg.period_unit <> 'rolling' THEN
    v_start := tollgate._window_start(cfg.period_unit, cfg.period_length, p_at, coalesce(cfg.anchor, p_at),
                                      cfg.period_start, cfg.period_end);
    v_end := coalesce(tollgate._window_end(cfg.period_unit, cfg.period_length, p_at, coalesce(cfg.anchor, p_at),
                                           cfg.period_start, cfg.period_end), 'infinity');
  END IF;
  IF p_register THEN
    INSERT INTO tollgate.usage AS u (customer, feature, window_start, window_end, plan, quota, soft)
    VALUES (p_customer, p_feature, v_start, v_end, cfg.plan, cfg.quota, cfg.soft)
    ON CONFLICT DO NOTHING;
  END IF;
  SELECT * INTO r FROM tollgate.usage u WHERE u.customer = p_customer AND u.feature = p_feature FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  v_seen := r;
  -- grants are spent by whoever holds the row: read them now that we do
  SELECT g.granted, least(cfg.valid_until, g.expires) INTO cfg.granted, cfg.valid_until
    FROM tollgate._granted(p_customer, p_feature, p_at) g;

  IF r.window_start > v_start AND p_at < r.window_start THEN
    -- this transaction began before the window rolled over: it counts in the current window
    v_start := r.window_start;
    v_end := r.window_end;
  ELSIF r.window_start <> v_start THEN
    -- the row's window is over, or the period changed: keep it as history
    PERFORM tollgate._close_window(r);
    r.used := 0;
    r.limit_hit := false;
  END IF;
  IF cfg.quota IS NOT NULL AND v_end <> '-infinity' THEN
    -- a limited feature is decided on this row alone
    r.used := r.used + tollgate._fold_shards(p_customer, p_feature, v_start);
  END IF;
  r.window_start := v_start;
  r.window_end := v_end;
  r.plan := cfg.plan;
  r.quota := cfg.quota;
  r.granted := cfg.granted;
  r.valid_until := least(v_end, cfg.valid_until);
  r.soft := cfg.soft;
  r.next_mark := tollgate._next_mark(p_feature, r.used, cfg.quota, cfg.soft);
  r.config_version := cfg.config_version;
  r.plan_epoch := cfg.plan_epoch;
  IF r IS DISTINCT FROM v_seen THEN
    PERFORM tollgate._save_usage(r);
  END IF;
  RETURN r;
END
$$;

-- Writes a usage row back. (This and _close_window are PL/pgSQL, not SQL:
-- on a Citus cluster a SQL function's parameters do not reach the planner,
-- which then sends the statement to every shard instead of the customer's.)
CREATE OR REPLACE FUNCTION tollgate._save_usage(r tollgate.usage)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  UPDATE tollgate.usage u
     SET window_start = r.window_start, window_end = r.window_end, used = r.used, limit_hit = r.limit_hit,
         plan = r.plan, quota = r.quota, soft = r.soft, next_mark = r.next_mark,
         config_version = r.config_version, plan_epoch = r.plan_epoch, granted = r.granted,
         valid_until = r.valid_until
   WHERE u.customer = r.customer AND u.feature = r.feature;
END
$$;

-- Keeps a closed window's count in usage_windows. Its shards stay keyed by
-- the window's start. A rolling row has no count of its own.
CREATE OR REPLACE FUNCTION tollgate._close_window(r tollgate.usage)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  IF r.window_end <> '-infinity' AND (r.used <> 0 OR r.limit_hit) THEN
    INSERT INTO tollgate.usage_windows AS w (customer, feature, window_start, window_end, used, plan)
    VALUES (r.customer, r.feature, r.window_start, nullif(r.window_end, 'infinity'), r.used, r.plan)
    ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = w.used + EXCLUDED.used;
  END IF;
END
$$;
