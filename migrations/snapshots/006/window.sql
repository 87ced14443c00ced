-- The window that contains p_at for a period: [window_start, window_end).
-- Arithmetic is done in UTC whatever the session's TimeZone, so the same call
-- lands in the same window from every client.
CREATE OR REPLACE FUNCTION tollgate._window(
  p_unit text,
  p_length integer,
  p_at timestamptz,
  p_anchor timestamptz,
  p_period_start timestamptz,
  p_period_end timestamptz,
  OUT window_start timestamptz,
  OUT window_end timestamptz)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  v_seconds bigint;
  v_steps bigint;
  v_anchor timestamp;
  v_at timestamp;
  v_months integer;
BEGIN
  CASE p_unit
  WHEN 'month' THEN
    window_start := date_trunc('month', p_at, 'UTC');
    window_end := ((window_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
  WHEN 'hour', 'day' THEN
    v_seconds := p_length::bigint * CASE p_unit WHEN 'hour' THEN 3600 ELSE 86400 END;
    -- A call whose transaction started before the customer's first call
    -- committed (so p_at < anchor) belongs to the first window.
    v_steps := greatest(floor(extract(epoch FROM p_at - p_anchor) / v_seconds)::bigint, 0);
    window_start := p_anchor + make_interval(secs => v_steps * v_seconds);
    window_end := window_start + make_interval(secs => v_seconds);
  WHEN 'billing' THEN
    IF p_period_start IS NOT NULL AND p_period_end IS NOT NULL
       AND p_at >= p_period_start AND p_at < p_period_end THEN
      window_start := p_period_start;
      window_end := p_period_end;
      RETURN;
    END IF;
    -- Free customers (or a paid period that has not been synced yet): monthly
    -- from the anchor, the way Stripe bills monthly (the 31st becomes the 30th
    -- or the 28th in shorter months).
    v_anchor := coalesce(p_period_start, p_anchor) AT TIME ZONE 'UTC';
    v_at := p_at AT TIME ZONE 'UTC';
    v_months := (extract(year FROM v_at) - extract(year FROM v_anchor))::integer * 12
              + (extract(month FROM v_at) - extract(month FROM v_anchor))::integer;
    IF v_anchor + make_interval(months => v_months) > v_at THEN
      v_months := v_months - 1;
    END IF;
    v_months := greatest(v_months, 0); -- before the anchor: the first window
    window_start := (v_anchor + make_interval(months => v_months)) AT TIME ZONE 'UTC';
    window_end := (v_anchor + make_interval(months => v_months + 1)) AT TIME ZONE 'UTC';
  WHEN 'lifetime' THEN
    window_start := '-infinity';
    window_end := NULL;
  ELSE
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('period unit %L has no fixed window', p_unit);
  END CASE;
END
$$;
