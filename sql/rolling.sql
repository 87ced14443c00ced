-- Rolling windows ("rolling 30d"): counts live in hour buckets in
-- usage_windows, and the usage at p_at is the sum of the buckets of the last
-- N days. The customer's usage row only serializes their calls (its window is
-- -infinity, so it never takes a hot path). Events are keyed by a fixed slot
-- one window long, so a customer hovering at the limit is prompted once per
-- window length, not each time an old bucket slides out.
CREATE OR REPLACE FUNCTION tollgate._rolling(
  p_customer text, p_feature text, p_at timestamptz,
  OUT used bigint, OUT resets_at timestamptz, OUT bucket timestamptz, OUT since timestamptz, OUT slot timestamptz)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  v_length interval := (SELECT make_interval(hours => 24 * f.period_length)
                          FROM tollgate.features f WHERE f.feature = p_feature);
  v_oldest timestamptz;
BEGIN
  bucket := date_trunc('hour', p_at, 'UTC');
  since := bucket - v_length; -- buckets after this one count
  slot := date_bin(v_length, p_at, timestamptz '2000-01-01 00:00:00+00');
  SELECT coalesce(sum(w.used), 0), min(w.window_start) FILTER (WHERE w.used > 0)
    INTO used, v_oldest
    FROM tollgate.usage_windows w
   WHERE w.customer = p_customer AND w.feature = p_feature
     AND w.window_start > since AND w.window_start <= bucket;
  resets_at := coalesce(v_oldest, bucket) + v_length;
END
$$;

-- consume's full path for a rolling window; r is the locked usage row.
CREATE OR REPLACE FUNCTION tollgate._consume_rolling(r tollgate.usage, p_amount bigint, p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  w record;
BEGIN
  SELECT * INTO w FROM tollgate._rolling(r.customer, r.feature, p_at);
  IF r.quota IS NOT NULL AND NOT r.soft AND p_amount > r.quota - w.used THEN
    IF tollgate._prompts(p_amount, r.quota) THEN
      PERFORM tollgate._emit('limit_reached', r.customer, r.feature, r.plan, w.used, r.quota, 100, w.slot, NULL, p_at);
    END IF;
    RETURN tollgate._verdict(false, r.customer, r.feature, r.plan, w.used, r.quota, w.resets_at);
  END IF;
  PERFORM tollgate._check_room(w.used, p_amount);
  INSERT INTO tollgate.usage_windows AS b (customer, feature, window_start, window_end, used, plan)
  VALUES (r.customer, r.feature, w.bucket, w.bucket + interval '1 hour', p_amount, r.plan)
  ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = b.used + p_amount;
  IF r.quota IS NOT NULL THEN
    PERFORM tollgate._crossed(r.customer, r.feature, r.plan, w.used, w.used + p_amount, r.quota, r.soft,
                              w.slot, NULL, p_at);
  END IF;
  RETURN tollgate._verdict(true, r.customer, r.feature, r.plan, w.used + p_amount, r.quota, w.resets_at);
END
$$;

-- refund's path for a rolling window: gives back from the newest buckets first.
CREATE OR REPLACE FUNCTION tollgate._refund_rolling(r tollgate.usage, p_amount bigint, p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  w record;
  v_left bigint := p_amount;
  v_bucket timestamptz;
  v_take bigint;
BEGIN
  SELECT * INTO w FROM tollgate._rolling(r.customer, r.feature, p_at);
  FOR v_bucket, v_take IN
    SELECT b.window_start, b.used
      FROM tollgate.usage_windows b
     WHERE b.customer = r.customer AND b.feature = r.feature
       AND b.window_start > w.since AND b.window_start <= w.bucket AND b.used > 0
     ORDER BY b.window_start DESC
  LOOP
    EXIT WHEN v_left = 0;
    v_take := least(v_take, v_left);
    UPDATE tollgate.usage_windows b SET used = b.used - v_take
     WHERE b.customer = r.customer AND b.feature = r.feature AND b.window_start = v_bucket;
    v_left := v_left - v_take;
  END LOOP;
  SELECT * INTO w FROM tollgate._rolling(r.customer, r.feature, p_at);
  RETURN tollgate._verdict(r.quota IS NULL OR r.soft OR w.used < r.quota, r.customer, r.feature, r.plan,
                           w.used, r.quota, w.resets_at);
END
$$;
