-- The window that contains p_at for a period: [_window_start, _window_end).
-- Arithmetic is done in UTC whatever the session's TimeZone, so the same call
-- lands in the same window from every client. A call before the anchor (its
-- transaction began before the customer's first call committed) belongs to
-- the first window.
--
-- _window_start and _window_end are plain SQL expressions so that the planner
-- inlines them into the statements of the hot path: no function call per row.
-- Only 'billing' calls out, to _billing_window.

-- billing: the subscription's current period when p_at is inside it;
-- otherwise monthly from the period start (a renewal not synced yet) or from
-- sign-up (free customers), the way Stripe bills monthly: the 31st becomes
-- the 30th or the 28th in shorter months.
CREATE OR REPLACE FUNCTION tollgate._billing_window(
  p_at timestamptz,
  p_anchor timestamptz,
  p_period_start timestamptz,
  p_period_end timestamptz,
  OUT window_start timestamptz,
  OUT window_end timestamptz)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  v_anchor timestamp;
  v_at timestamp;
  v_months integer;
BEGIN
  IF p_period_start IS NOT NULL AND p_period_end IS NOT NULL
     AND p_at >= p_period_start AND p_at < p_period_end THEN
    window_start := p_period_start;
    window_end := p_period_end;
    RETURN;
  END IF;
  v_anchor := coalesce(p_period_start, p_anchor) AT TIME ZONE 'UTC';
  v_at := p_at AT TIME ZONE 'UTC';
  v_months := (extract(year FROM v_at) - extract(year FROM v_anchor))::integer * 12
            + (extract(month FROM v_at) - extract(month FROM v_anchor))::integer;
  IF v_anchor + make_interval(months => v_months) > v_at THEN
    v_months := v_months - 1;
  END IF;
  v_months := greatest(v_months, 0);
  window_start := (v_anchor + make_interval(months => v_months)) AT TIME ZONE 'UTC';
  window_end := (v_anchor + make_interval(months => v_months + 1)) AT TIME ZONE 'UTC';
END
$$;

-- Seconds in one fixed window of unit hour or day.
CREATE OR REPLACE FUNCTION tollgate._window_seconds(p_unit text, p_length integer)
RETURNS double precision
LANGUAGE sql IMMUTABLE
AS $$
  SELECT p_length * CASE p_unit WHEN 'hour' THEN 3600.0 ELSE 86400.0 END
$$;

CREATE OR REPLACE FUNCTION tollgate._window_start(
  p_unit text, p_length integer, p_at timestamptz, p_anchor timestamptz,
  p_period_start timestamptz, p_period_end timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE
AS $$
  SELECT CASE
    WHEN p_unit = 'month' THEN pg_catalog.date_trunc('month', p_at, 'UTC')
    WHEN p_unit IN ('day', 'hour') THEN p_anchor + make_interval(secs =>
      greatest(floor(extract(epoch FROM p_at - p_anchor) / tollgate._window_seconds(p_unit, p_length)), 0)
      * tollgate._window_seconds(p_unit, p_length))
    WHEN p_unit = 'lifetime' THEN '-infinity'::timestamptz
    WHEN p_unit = 'billing' THEN (tollgate._billing_window(p_at, p_anchor, p_period_start, p_period_end)).window_start
    -- rolling: the current hour bucket
    WHEN p_unit = 'rolling' THEN pg_catalog.date_trunc('hour', p_at, 'UTC')
  END
$$;

-- The end of the window: its start plus its length (billing: the period's
-- end; lifetime: none). For rolling windows, when the current bucket leaves
-- the window (the caller moves it to the oldest bucket that counts).
CREATE OR REPLACE FUNCTION tollgate._window_end(
  p_unit text, p_length integer, p_at timestamptz, p_anchor timestamptz,
  p_period_start timestamptz, p_period_end timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE
AS $$
  SELECT CASE p_unit
    WHEN 'lifetime' THEN NULL::timestamptz
    WHEN 'billing' THEN (tollgate._billing_window(p_at, p_anchor, p_period_start, p_period_end)).window_end
    WHEN 'month' THEN ((tollgate._window_start(p_unit, p_length, p_at, p_anchor, p_period_start, p_period_end)
                        AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
    WHEN 'rolling' THEN tollgate._window_start(p_unit, p_length, p_at, p_anchor, p_period_start, p_period_end)
                        + make_interval(hours => 24 * p_length)
    ELSE tollgate._window_start(p_unit, p_length, p_at, p_anchor, p_period_start, p_period_end)
         + make_interval(secs => tollgate._window_seconds(p_unit, p_length))
  END
$$;
