-- The schema of tollgate release 0.1.0, for the upgrade test (tests/upgrade): written by
-- make release-fixture VERSION=0.1.0 on the tagged commit, a pg_dump --no-owner of a database freshly
-- migrated by that release (schema and data: its public.schema_version, its tollgate.code_package).
-- Never edit it: the test restores it and migrates it to head.
--
-- PostgreSQL database dump
--



SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: tollgate; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA tollgate;


--
-- Name: SCHEMA tollgate; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON SCHEMA tollgate IS 'tollgate: freemium gating inside PostgreSQL. Call the functions; the tables are private.';


--
-- Name: verdict; Type: TYPE; Schema: tollgate; Owner: -
--

CREATE TYPE tollgate.verdict AS (
	allowed boolean,
	customer text,
	feature text,
	plan text,
	used bigint,
	quota bigint,
	remaining bigint,
	resets_at timestamp with time zone,
	message text
);


--
-- Name: TYPE verdict; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON TYPE tollgate.verdict IS 'The answer of consume, check, require, refund and usage: whether the call is allowed, the customer''s plan, usage in the current window, the quota (NULL = unlimited), what remains (NULL = unlimited), when the window resets (NULL = never) and, when blocked or over quota, the message to show.';


--
-- Name: _attribution_window(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._attribution_window() RETURNS interval
    LANGUAGE sql STABLE
    AS $$
  SELECT coalesce((SELECT s.value::interval FROM tollgate.settings s WHERE s.key = 'attribution_window'),
                  interval '30 days')
$$;


--
-- Name: _billing_window(timestamp with time zone, timestamp with time zone, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._billing_window(p_at timestamp with time zone, p_anchor timestamp with time zone, p_period_start timestamp with time zone, p_period_end timestamp with time zone, OUT window_start timestamp with time zone, OUT window_end timestamp with time zone) RETURNS record
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


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: usage; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.usage (
    customer text NOT NULL,
    feature text NOT NULL,
    window_start timestamp with time zone NOT NULL,
    window_end timestamp with time zone NOT NULL,
    used bigint DEFAULT 0 NOT NULL,
    limit_hit boolean DEFAULT false NOT NULL,
    plan text NOT NULL,
    quota bigint,
    soft boolean DEFAULT false NOT NULL,
    next_mark bigint,
    config_version bigint DEFAULT 0 NOT NULL,
    plan_epoch bigint DEFAULT 0 NOT NULL
)
WITH (fillfactor='70');


--
-- Name: TABLE usage; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON TABLE tollgate.usage IS 'Usage in the current window per customer and feature; closed windows move to usage_windows.';


--
-- Name: COLUMN usage.window_end; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.usage.window_end IS 'End of the window (infinity for lifetime; -infinity for rolling, which never takes the one-statement path).';


--
-- Name: COLUMN usage.limit_hit; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.usage.limit_hit IS 'A limit_reached event was written for this window: later blocked calls only read.';


--
-- Name: COLUMN usage.next_mark; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.usage.next_mark IS 'The usage at which the next event is due (a notify_at threshold; soft: quota + 1); NULL = none.';


--
-- Name: COLUMN usage.config_version; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.usage.config_version IS 'The config_state version that plan, quota, soft and next_mark were copied at; 0 = stale.';


--
-- Name: COLUMN usage.plan_epoch; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.usage.plan_epoch IS 'The customer''s plan_epoch when plan and window were copied: a plan change makes the row stale.';


--
-- Name: _block(tollgate.usage, bigint, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._block(r tollgate.usage, p_amount bigint, p_at timestamp with time zone) RETURNS tollgate.verdict
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF NOT r.limit_hit AND tollgate._prompts(p_amount, r.quota) THEN
    r.limit_hit := true;
    PERFORM tollgate._emit('limit_reached', r.customer, r.feature, r.plan, r.used, r.quota, 100,
                           r.window_start, nullif(r.window_end, 'infinity'), p_at);
    PERFORM tollgate._save_usage(r);
  END IF;
  RETURN tollgate._verdict(false, r.customer, r.feature, r.plan, r.used, r.quota, r.window_end);
END
$$;


--
-- Name: _bump_config_version(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._bump_config_version() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  UPDATE tollgate.config_state SET version = version + 1;
  RETURN NULL;
END
$$;


--
-- Name: _check(text, text, bigint, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._check(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) RETURNS tollgate.verdict
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
  r tollgate.usage;
  cfg record;
  w record;
  v_start timestamptz;
  v_end timestamptz;
  v_used bigint := 0;
BEGIN
  PERFORM tollgate._check_args(p_customer, p_feature, p_amount);
  SELECT u.* INTO r
    FROM tollgate.usage u
    JOIN tollgate.customers c ON c.customer = u.customer AND c.plan_epoch = u.plan_epoch
   WHERE u.customer = p_customer AND u.feature = p_feature
     AND u.window_start <= p_at AND u.window_end > p_at
     AND u.config_version = (SELECT cs.version FROM tollgate.config_state cs);
  IF FOUND THEN
    v_used := tollgate._total(r);
    RETURN tollgate._verdict(r.quota IS NULL OR r.soft OR p_amount <= r.quota - v_used,
                             p_customer, p_feature, r.plan, v_used, r.quota, r.window_end);
  END IF;

  SELECT * INTO cfg FROM tollgate._config(p_customer, p_feature);
  IF cfg.period_unit = 'rolling' THEN
    SELECT * INTO w FROM tollgate._rolling(p_customer, p_feature, p_at);
    RETURN tollgate._verdict(cfg.quota IS NULL OR cfg.soft OR p_amount <= cfg.quota - w.used,
                             p_customer, p_feature, cfg.plan, w.used, cfg.quota, w.resets_at);
  END IF;
  v_start := tollgate._window_start(cfg.period_unit, cfg.period_length, p_at, coalesce(cfg.anchor, p_at),
                                    cfg.period_start, cfg.period_end);
  v_end := coalesce(tollgate._window_end(cfg.period_unit, cfg.period_length, p_at, coalesce(cfg.anchor, p_at),
                                         cfg.period_start, cfg.period_end), 'infinity');
  SELECT u.* INTO r FROM tollgate.usage u WHERE u.customer = p_customer AND u.feature = p_feature;
  IF r.window_start = v_start THEN
    v_used := tollgate._total(r);
  ELSIF r.window_start > v_start THEN
    -- a closed window
    SELECT least(coalesce(sum(h.used), 0) + tollgate._shard_total(p_customer, p_feature, v_start),
                 9223372036854775807)::bigint
      INTO v_used
      FROM tollgate.usage_windows h
     WHERE h.customer = p_customer AND h.feature = p_feature AND h.window_start = v_start;
  END IF;
  RETURN tollgate._verdict(cfg.quota IS NULL OR cfg.soft OR p_amount <= cfg.quota - v_used,
                           p_customer, p_feature, cfg.plan, v_used, cfg.quota, v_end);
END
$$;


--
-- Name: _check_args(text, text, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._check_args(p_customer text, p_feature text, p_amount bigint) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
  IF pg_catalog.length(p_customer) BETWEEN 1 AND 255 AND pg_catalog.length(p_feature) BETWEEN 1 AND 63
     AND p_amount > 0 THEN
    RETURN;
  END IF;
  PERFORM tollgate._check_text('customer', p_customer, 255);
  PERFORM tollgate._check_text('feature', p_feature, 63);
  RAISE EXCEPTION USING ERRCODE = 'TG422',
    MESSAGE = format('amount must be a positive integer, not %s', coalesce(p_amount::text, 'NULL'));
END
$$;


--
-- Name: _check_room(bigint, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._check_room(p_used bigint, p_amount bigint) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
  IF p_amount > 9223372036854775807 - greatest(p_used, 0) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('amount %s would take usage past the largest count, 9223372036854775807', p_amount);
  END IF;
END
$$;


--
-- Name: _check_text(text, text, integer); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._check_text(p_what text, p_value text, p_max integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
  IF p_value IS NULL OR p_value = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('%s must be a non-empty text', p_what);
  END IF;
  IF pg_catalog.length(p_value) > p_max THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('%s must be at most %s characters long, not %s', p_what, p_max, pg_catalog.length(p_value));
  END IF;
END
$$;


--
-- Name: _close_window(tollgate.usage); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._close_window(r tollgate.usage) RETURNS void
    LANGUAGE sql
    AS $$
  INSERT INTO tollgate.usage_windows AS w (customer, feature, window_start, window_end, used, plan)
  SELECT r.customer, r.feature, r.window_start, nullif(r.window_end, 'infinity'), r.used, r.plan
   WHERE r.window_end <> '-infinity' AND (r.used <> 0 OR r.limit_hit)
  ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = w.used + EXCLUDED.used
$$;


--
-- Name: _config(text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._config(p_customer text, p_feature text, OUT period_unit text, OUT period_length integer, OUT soft boolean, OUT known boolean, OUT anchor timestamp with time zone, OUT period_start timestamp with time zone, OUT period_end timestamp with time zone, OUT plan text, OUT quota bigint, OUT config_version bigint, OUT plan_epoch bigint) RETURNS record
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
  SELECT f.period_unit, f.period_length, f.enforcement = 'soft',
         c.customer IS NOT NULL, c.created_at, c.period_start, c.period_end,
         coalesce(c.plan, d.plan), CASE WHEN l.plan IS NULL THEN 0 ELSE l.quota END,
         s.version, coalesce(c.plan_epoch, 0)
    INTO period_unit, period_length, soft, known, anchor, period_start, period_end,
         plan, quota, config_version, plan_epoch
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
  IF plan IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404',
      MESSAGE = 'no default plan is defined',
      HINT = 'Define one with tollgate.define_plan(plan, is_default => true).';
  END IF;
END
$$;


--
-- Name: _consume(text, text, bigint, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._consume(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) RETURNS tollgate.verdict
    LANGUAGE plpgsql
    AS $$
DECLARE
  r tollgate.usage;
BEGIN
  PERFORM tollgate._check_args(p_customer, p_feature, p_amount);

  UPDATE tollgate.usage u SET used = u.used + p_amount
    FROM tollgate.customers c
   WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_end > p_at
     AND c.customer = p_customer AND c.plan_epoch = u.plan_epoch
     AND u.config_version = (SELECT cs.version FROM tollgate.config_state cs)
     AND u.quota IS NOT NULL
     AND p_amount <= CASE WHEN u.soft THEN 9223372036854775807 - u.used ELSE u.quota - u.used END
  RETURNING u.* INTO r;
  IF FOUND THEN
    IF r.used >= r.next_mark THEN
      UPDATE tollgate.usage u
         SET next_mark = tollgate._crossed(p_customer, p_feature, r.plan, r.used - p_amount, r.used, r.quota,
                                           r.soft, r.window_start, r.window_end, p_at)
       WHERE u.customer = p_customer AND u.feature = p_feature;
    END IF;
    RETURN tollgate._verdict(true, p_customer, p_feature, r.plan, r.used, r.quota, r.window_end);
  END IF;

  SELECT u.* INTO r
    FROM tollgate.usage u
    JOIN tollgate.customers c ON c.customer = u.customer AND c.plan_epoch = u.plan_epoch
   WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_end > p_at
     AND u.config_version = (SELECT cs.version FROM tollgate.config_state cs);
  IF FOUND AND r.quota IS NULL THEN
    INSERT INTO tollgate.usage_shards AS s (customer, feature, window_start, shard, used)
    VALUES (p_customer, p_feature, r.window_start, tollgate._shard(), p_amount)
    ON CONFLICT (customer, feature, window_start, shard) DO UPDATE SET used = s.used + EXCLUDED.used
     WHERE s.used <= 9223372036854775807 - EXCLUDED.used;
    IF FOUND THEN
      RETURN tollgate._verdict(true, p_customer, p_feature, r.plan, tollgate._total(r), NULL, r.window_end);
    END IF;
  ELSIF FOUND AND r.limit_hit AND NOT r.soft AND p_amount > r.quota - r.used THEN
    RETURN tollgate._verdict(false, p_customer, p_feature, r.plan, r.used, r.quota, r.window_end);
  END IF;

  RETURN tollgate._consume_locked(p_customer, p_feature, p_amount, p_at);
END
$$;


--
-- Name: _consume_locked(text, text, bigint, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._consume_locked(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) RETURNS tollgate.verdict
    LANGUAGE plpgsql
    AS $$
DECLARE
  r tollgate.usage := tollgate._usage_row(p_customer, p_feature, p_at, true);
  v_old bigint := r.used;
BEGIN
  IF r.window_end = '-infinity' THEN
    RETURN tollgate._consume_rolling(r, p_amount, p_at);
  END IF;
  IF r.quota IS NOT NULL AND NOT r.soft AND p_amount > r.quota - r.used THEN
    RETURN tollgate._block(r, p_amount, p_at);
  END IF;
  PERFORM tollgate._check_room(r.used, p_amount);
  r.used := r.used + p_amount;
  IF r.quota IS NOT NULL THEN
    r.next_mark := tollgate._crossed(p_customer, p_feature, r.plan, v_old, r.used, r.quota, r.soft,
                                     r.window_start, r.window_end, p_at);
  END IF;
  PERFORM tollgate._save_usage(r);
  RETURN tollgate._verdict(true, p_customer, p_feature, r.plan,
                           CASE WHEN r.quota IS NULL THEN tollgate._total(r) ELSE r.used END, r.quota, r.window_end);
END
$$;


--
-- Name: _consume_rolling(tollgate.usage, bigint, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._consume_rolling(r tollgate.usage, p_amount bigint, p_at timestamp with time zone) RETURNS tollgate.verdict
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


--
-- Name: _crossed(text, text, text, bigint, bigint, bigint, boolean, timestamp with time zone, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._crossed(p_customer text, p_feature text, p_plan text, p_old bigint, p_new bigint, p_quota bigint, p_soft boolean, p_start timestamp with time zone, p_end timestamp with time zone, p_at timestamp with time zone) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_pct integer;
  v_mark numeric;
BEGIN
  FOR v_pct IN SELECT t FROM tollgate.features f CROSS JOIN LATERAL unnest(f.notify_at) t WHERE f.feature = p_feature LOOP
    v_mark := ceil(p_quota::numeric * v_pct / 100);
    IF p_old < v_mark AND p_new >= v_mark THEN
      PERFORM tollgate._emit('threshold', p_customer, p_feature, p_plan, p_new, p_quota, v_pct,
                             p_start, nullif(p_end, 'infinity'), p_at);
    END IF;
  END LOOP;
  IF p_soft AND p_old <= p_quota AND p_new > p_quota THEN
    PERFORM tollgate._emit('limit_reached', p_customer, p_feature, p_plan, p_new, p_quota, 100,
                           p_start, nullif(p_end, 'infinity'), p_at);
  END IF;
  RETURN tollgate._next_mark(p_feature, p_new, p_quota, p_soft);
END
$$;


--
-- Name: _customers_plan_changed(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._customers_plan_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_default text;
  v_from text;
  v_from_paid boolean := OLD.plan IS NOT NULL;
  v_to text;
  v_to_paid boolean := NEW.plan IS NOT NULL;
  v_kind text;
  v_folded_from text;
  v_folded_paid boolean;
  v_email bigint;
  v_event bigint;
  v_feature text;
  v_prompted timestamptz;
BEGIN
  SELECT p.plan INTO v_default FROM tollgate.plans p WHERE p.is_default;
  v_default := coalesce(v_default, 'default');
  v_from := coalesce(OLD.plan, v_default);
  v_to := coalesce(NEW.plan, v_default);

  DELETE FROM tollgate.plan_changes pc
   WHERE pc.customer = NEW.customer AND pc.xact = pg_catalog.pg_current_xact_id()
  RETURNING pc.from_plan, pc.kind <> 'conversion' INTO v_folded_from, v_folded_paid;
  IF FOUND THEN
    v_from := v_folded_from;
    v_from_paid := v_folded_paid;
  END IF;
  IF v_from_paid = v_to_paid AND v_from = v_to THEN
    RETURN NULL; -- back where the transaction started
  END IF;

  v_kind := CASE WHEN NOT v_from_paid THEN 'conversion' WHEN NOT v_to_paid THEN 'churn' ELSE 'change' END;
  IF v_kind = 'conversion' THEN
    SELECT m.id, m.event_id, m.feature, m.sent_at
      INTO v_email, v_event, v_feature, v_prompted
      FROM tollgate.emails m
      JOIN tollgate.events e ON e.id = m.event_id
     WHERE m.customer = NEW.customer
       AND m.status = 'sent'
       AND m.sent_at >= now() - tollgate._attribution_window()
       AND m.sent_at <= now()
       AND e.plan = v_from
     ORDER BY m.sent_at DESC, m.id DESC
     LIMIT 1;
  END IF;
  INSERT INTO tollgate.plan_changes (customer, from_plan, to_plan, kind, email_id, event_id, feature, prompted_at)
  VALUES (NEW.customer, v_from, v_to, v_kind, v_email, v_event, v_feature, v_prompted);
  RETURN NULL;
END
$$;


--
-- Name: _emit(text, text, text, text, bigint, bigint, integer, timestamp with time zone, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._emit(p_kind text, p_customer text, p_feature text, p_plan text, p_used bigint, p_quota bigint, p_threshold integer, p_period_start timestamp with time zone, p_period_end timestamp with time zone, p_at timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_id bigint;
BEGIN
  INSERT INTO tollgate.events AS e
    (kind, customer, feature, plan, used, quota, threshold, period_start, period_end, created_at)
  VALUES
    (p_kind, p_customer, p_feature, p_plan, p_used, p_quota, p_threshold, p_period_start, p_period_end, p_at)
  ON CONFLICT (customer, feature, period_start, kind, threshold) DO NOTHING
  RETURNING e.id INTO v_id;
  IF v_id IS NOT NULL THEN
    PERFORM pg_catalog.pg_notify('tollgate_events', v_id::text);
  END IF;
END
$$;


--
-- Name: _fold_shards(text, text, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._fold_shards(p_customer text, p_feature text, p_start timestamp with time zone) RETURNS bigint
    LANGUAGE sql
    AS $$
  WITH folded AS (
    DELETE FROM tollgate.usage_shards s
     WHERE (s.customer, s.feature, s.window_start, s.shard) IN (
             SELECT f.customer, f.feature, f.window_start, f.shard
               FROM tollgate.usage_shards f
              WHERE f.customer = p_customer AND f.feature = p_feature AND f.window_start = p_start
                FOR UPDATE SKIP LOCKED)
    RETURNING s.used)
  SELECT least(coalesce(sum(folded.used), 0), 9223372036854775807)::bigint FROM folded
$$;


--
-- Name: _link_stripe_customer(text, text, text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._link_stripe_customer(p_stripe_customer text, p_customer text, p_source text, p_source_id text) RETURNS text
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_owner text;
BEGIN
  INSERT INTO tollgate.stripe_links AS l (stripe_customer, customer, source, source_id)
  VALUES (p_stripe_customer, p_customer, p_source, p_source_id)
  ON CONFLICT ON CONSTRAINT stripe_links_pkey DO UPDATE
    SET customer = EXCLUDED.customer, source = EXCLUDED.source, source_id = EXCLUDED.source_id, linked_at = now()
  WHERE (l.customer, l.source) IS DISTINCT FROM (EXCLUDED.customer, EXCLUDED.source)
    AND (EXCLUDED.source = 'metadata' OR l.source = 'checkout');
  v_owner := tollgate._stripe_owner(p_stripe_customer);
  IF v_owner = p_customer THEN
    -- first sight of this customer: register it (on the default plan until
    -- the relink below gives it its subscriptions' plan)
    INSERT INTO tollgate.customers AS c (customer) VALUES (p_customer)
    ON CONFLICT ON CONSTRAINT customers_pkey DO NOTHING;
  END IF;
  UPDATE tollgate.subscriptions s SET customer = v_owner
   WHERE s.stripe_customer = p_stripe_customer AND s.customer IS DISTINCT FROM v_owner;
  RETURN v_owner;
END
$$;


--
-- Name: _next_mark(text, bigint, bigint, boolean); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._next_mark(p_feature text, p_used bigint, p_quota bigint, p_soft boolean) RETURNS bigint
    LANGUAGE sql STABLE
    AS $$
  SELECT least(min(m.mark), 9223372036854775807)::bigint
    FROM (SELECT ceil(p_quota::numeric * t / 100) AS mark
            FROM tollgate.features f CROSS JOIN LATERAL unnest(f.notify_at) t
           WHERE f.feature = p_feature
          UNION ALL
          SELECT p_quota::numeric + 1 WHERE p_soft) m
   WHERE m.mark > p_used
$$;


--
-- Name: _note(text, text, bigint, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._note(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) RETURNS tollgate.verdict
    LANGUAGE plpgsql
    AS $$
DECLARE
  r tollgate.usage;
  w record;
BEGIN
  PERFORM tollgate._check_args(p_customer, p_feature, p_amount);
  r := tollgate._usage_row(p_customer, p_feature, p_at, true);
  IF r.window_end = '-infinity' THEN
    SELECT * INTO w FROM tollgate._rolling(p_customer, p_feature, p_at);
    IF r.quota IS NULL OR r.soft OR p_amount <= r.quota - w.used THEN
      RETURN tollgate._verdict(true, p_customer, p_feature, r.plan, w.used, r.quota, w.resets_at);
    END IF;
    IF tollgate._prompts(p_amount, r.quota) THEN
      PERFORM tollgate._emit('limit_reached', p_customer, p_feature, r.plan, w.used, r.quota, 100, w.slot, NULL, p_at);
    END IF;
    RETURN tollgate._verdict(false, p_customer, p_feature, r.plan, w.used, r.quota, w.resets_at);
  END IF;
  IF r.quota IS NULL OR r.soft OR p_amount <= r.quota - r.used THEN
    RETURN tollgate._verdict(true, p_customer, p_feature, r.plan, tollgate._total(r), r.quota, r.window_end);
  END IF;
  RETURN tollgate._block(r, p_amount, p_at);
END
$$;


--
-- Name: _outbox_worker_gone(text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._outbox_worker_gone(p_worker text) RETURNS boolean
    LANGUAGE sql
    AS $$
  -- Taking the lock succeeds only if no session holds it. It is released at
  -- the end of the claiming transaction.
  SELECT p_worker IS NOT NULL
     AND pg_catalog.pg_try_advisory_xact_lock(1953459308, pg_catalog.hashtext(p_worker))
$$;


--
-- Name: _plan_for(text[], text[]); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._plan_for(p_prices text[], p_products text[]) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  SELECT p.plan
    FROM tollgate.plans p
   WHERE p.stripe_prices && coalesce(p_prices, '{}') OR p.stripe_products && coalesce(p_products, '{}')
   ORDER BY p.rank DESC, p.plan
   LIMIT 1
$$;


--
-- Name: _prompts(bigint, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._prompts(p_amount bigint, p_quota bigint) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT p_amount <= p_quota OR p_quota = 0
$$;


--
-- Name: _raise_quota_exceeded(tollgate.verdict, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._raise_quota_exceeded(v tollgate.verdict, p_amount bigint) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'TG402',
    MESSAGE = format('quota exceeded: %s for customer %s (%s of %s used)', v.feature, v.customer, v.used, v.quota),
    DETAIL = pg_catalog.json_build_object(
      'feature', v.feature, 'customer', v.customer, 'plan', v.plan,
      'used', v.used, 'quota', v.quota, 'resets_at', v.resets_at, 'amount', p_amount)::text,
    HINT = v.message;
END
$$;


--
-- Name: _refresh_customer(text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._refresh_customer(p_customer text) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_plan text;
  v_start timestamptz;
  v_end timestamptz;
  v_grace boolean;
BEGIN
  IF p_customer IS NULL THEN
    RETURN;
  END IF;
  -- One refresh of a customer at a time: two syncs of two of their
  -- subscriptions (monthly to yearly) each see the other's committed row,
  -- instead of each deciding from a snapshot without the other.
  PERFORM FROM tollgate.customers c WHERE c.customer = p_customer FOR NO KEY UPDATE;
  SELECT s.value = 'true' INTO v_grace FROM tollgate.settings s WHERE s.key = 'past_due_is_grace';
  SELECT s.plan, s.current_period_start, s.current_period_end
    INTO v_plan, v_start, v_end
    FROM tollgate.subscriptions s
    JOIN tollgate.plans p ON p.plan = s.plan AND NOT p.is_default
   WHERE s.customer = p_customer
     AND (s.status IN ('active', 'trialing') OR (s.status = 'past_due' AND coalesce(v_grace, false)))
   ORDER BY p.rank DESC, s.current_period_end DESC NULLS LAST, s.stripe_subscription
   LIMIT 1;
  -- A new epoch makes every usage row that copied the old plan stale (consume
  -- compares epochs), without locking those rows: no deadlock with an app
  -- transaction that holds them.
  UPDATE tollgate.customers c
     SET plan = v_plan, period_start = v_start, period_end = v_end, plan_epoch = c.plan_epoch + 1,
         updated_at = now()
   WHERE c.customer = p_customer
     AND (c.plan, c.period_start, c.period_end) IS DISTINCT FROM (v_plan, v_start, v_end);
END
$$;


--
-- Name: _refund(text, text, bigint, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._refund(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) RETURNS tollgate.verdict
    LANGUAGE plpgsql
    AS $$
DECLARE
  r tollgate.usage;
BEGIN
  PERFORM tollgate._check_args(p_customer, p_feature, p_amount);
  r := tollgate._usage_row(p_customer, p_feature, p_at, false);
  IF r IS NULL THEN
    RETURN tollgate._check(p_customer, p_feature, 1, p_at);
  END IF;
  IF r.window_end = '-infinity' THEN
    RETURN tollgate._refund_rolling(r, p_amount, p_at);
  END IF;
  -- an unlimited window's units may be on its shards: the row's own count
  -- then goes below 0, and the window's usage (the sum) never does
  r.used := r.used - least(p_amount, tollgate._total(r));
  r.next_mark := tollgate._next_mark(p_feature, r.used, r.quota, r.soft);
  PERFORM tollgate._save_usage(r);
  RETURN tollgate._verdict(r.quota IS NULL OR r.soft OR r.used < r.quota, p_customer, p_feature, r.plan,
                           tollgate._total(r), r.quota, r.window_end);
END
$$;


--
-- Name: _refund_rolling(tollgate.usage, bigint, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._refund_rolling(r tollgate.usage, p_amount bigint, p_at timestamp with time zone) RETURNS tollgate.verdict
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


--
-- Name: _rolling(text, text, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._rolling(p_customer text, p_feature text, p_at timestamp with time zone, OUT used bigint, OUT resets_at timestamp with time zone, OUT bucket timestamp with time zone, OUT since timestamp with time zone, OUT slot timestamp with time zone) RETURNS record
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


--
-- Name: _row_gate(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._row_gate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
  v_read text := format('SELECT ($1).%I::text', TG_ARGV[0]);
  v_old text;
  v_new text;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    EXECUTE v_read INTO v_old USING OLD;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    EXECUTE v_read INTO v_new USING NEW;
  END IF;
  IF v_old IS NOT DISTINCT FROM v_new THEN
    RETURN NULL;
  END IF;
  IF v_old IS NOT NULL AND v_old <> '' THEN
    PERFORM tollgate.refund(v_old, TG_ARGV[1], 1);
  END IF;
  IF v_new IS NOT NULL THEN
    PERFORM tollgate.require(v_new, TG_ARGV[1], 1);
  END IF;
  RETURN NULL;
END
$_$;


--
-- Name: FUNCTION _row_gate(); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate._row_gate() IS 'Trigger function of row gates (see attach_row_gate); arguments: customer column, feature. Runs with the rights of the role that writes the row, which must be a member of tollgate_app.';


--
-- Name: _save_usage(tollgate.usage); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._save_usage(r tollgate.usage) RETURNS void
    LANGUAGE sql
    AS $$
  UPDATE tollgate.usage u
     SET window_start = r.window_start, window_end = r.window_end, used = r.used, limit_hit = r.limit_hit,
         plan = r.plan, quota = r.quota, soft = r.soft, next_mark = r.next_mark,
         config_version = r.config_version, plan_epoch = r.plan_epoch
   WHERE u.customer = r.customer AND u.feature = r.feature
$$;


--
-- Name: _shard(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._shard() RETURNS integer
    LANGUAGE sql STABLE
    AS $$
  SELECT pg_catalog.pg_backend_pid() % 16
$$;


--
-- Name: _shard_total(text, text, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._shard_total(p_customer text, p_feature text, p_start timestamp with time zone) RETURNS numeric
    LANGUAGE sql STABLE
    AS $$
  SELECT coalesce(sum(s.used), 0)
    FROM tollgate.usage_shards s
   WHERE s.customer = p_customer AND s.feature = p_feature AND s.window_start = p_start
$$;


--
-- Name: _stripe_owner(text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._stripe_owner(p_stripe_customer text) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  SELECT coalesce(
    (SELECT c.customer FROM tollgate.customers c WHERE c.stripe_customer = p_stripe_customer),
    (SELECT l.customer FROM tollgate.stripe_links l WHERE l.stripe_customer = p_stripe_customer))
$$;


--
-- Name: _subscriptions_after(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._subscriptions_after() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM tollgate._refresh_customer(OLD.customer);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.customer IS DISTINCT FROM OLD.customer THEN
    PERFORM tollgate._refresh_customer(NEW.customer);
  END IF;
  RETURN NULL;
END
$$;


--
-- Name: _subscriptions_before(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._subscriptions_before() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  NEW.plan := tollgate._plan_for(NEW.price_ids, NEW.product_ids);
  IF NEW.customer IS NULL THEN
    NEW.customer := tollgate._stripe_owner(NEW.stripe_customer);
  END IF;
  RETURN NEW;
END
$$;


--
-- Name: _total(tollgate.usage); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._total(r tollgate.usage) RETURNS bigint
    LANGUAGE sql STABLE
    AS $$
  SELECT least(r.used + tollgate._shard_total(r.customer, r.feature, r.window_start), 9223372036854775807)::bigint
$$;


--
-- Name: _usage_row(text, text, timestamp with time zone, boolean); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._usage_row(p_customer text, p_feature text, p_at timestamp with time zone, p_register boolean) RETURNS tollgate.usage
    LANGUAGE plpgsql
    AS $$
DECLARE
  cfg record;
  r tollgate.usage;
  v_seen tollgate.usage;
  v_start timestamptz := '-infinity'; -- rolling windows: the row only serializes calls
  v_end timestamptz := '-infinity';
BEGIN
  SELECT * INTO cfg FROM tollgate._config(p_customer, p_feature);
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


--
-- Name: _verdict(boolean, text, text, text, bigint, bigint, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._verdict(p_allowed boolean, p_customer text, p_feature text, p_plan text, p_used bigint, p_quota bigint, p_end timestamp with time zone) RETURNS tollgate.verdict
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
  v_message text;
BEGIN
  IF NOT p_allowed OR p_used > p_quota THEN
    SELECT f.message INTO v_message FROM tollgate.features f WHERE f.feature = p_feature;
    v_message := coalesce(v_message, format('You have used %s of %s %s on the %s plan. Upgrade to continue.',
                                            p_used, p_quota, p_feature, p_plan));
  END IF;
  RETURN ROW(p_allowed, p_customer, p_feature, p_plan, p_used, p_quota,
             CASE WHEN p_quota IS NOT NULL THEN greatest(p_quota - p_used, 0) END,
             CASE WHEN pg_catalog.isfinite(p_end) THEN p_end END,
             v_message)::tollgate.verdict;
END
$$;


--
-- Name: _window_end(text, integer, timestamp with time zone, timestamp with time zone, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._window_end(p_unit text, p_length integer, p_at timestamp with time zone, p_anchor timestamp with time zone, p_period_start timestamp with time zone, p_period_end timestamp with time zone) RETURNS timestamp with time zone
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


--
-- Name: _window_seconds(text, integer); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._window_seconds(p_unit text, p_length integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT p_length * CASE p_unit WHEN 'hour' THEN 3600.0 ELSE 86400.0 END
$$;


--
-- Name: _window_start(text, integer, timestamp with time zone, timestamp with time zone, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate._window_start(p_unit text, p_length integer, p_at timestamp with time zone, p_anchor timestamp with time zone, p_period_start timestamp with time zone, p_period_end timestamp with time zone) RETURNS timestamp with time zone
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


--
-- Name: attach_row_gate(regclass, name, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.attach_row_gate(tbl regclass, customer_column name, feature text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
  v_tbl regclass := $1;
  v_column name := $2;
  v_feature text := $3;
  v_trigger name;
  v_customers text[];
  v_counts bigint[];
BEGIN
  IF v_tbl IS NULL OR v_column IS NULL OR v_feature IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'attach_row_gate needs a table, a customer column and a feature';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = v_tbl AND a.attname = v_column AND a.attnum > 0 AND NOT a.attisdropped) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('table %s has no column %I', v_tbl, v_column);
  END IF;
  v_trigger := left('tollgate_gate_' || v_feature, 63);
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = v_tbl AND t.tgname = v_trigger) THEN
    EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, v_tbl); -- attaching again replaces the gate
  END IF;
  -- CREATE TRIGGER locks the table against writes until this transaction
  -- ends, so the rows counted below are exactly the rows the gate starts from.
  EXECUTE format(
    'CREATE TRIGGER %I AFTER INSERT OR DELETE OR UPDATE OF %I ON %s '
    'FOR EACH ROW EXECUTE FUNCTION tollgate._row_gate(%L, %L)',
    v_trigger, v_column, v_tbl, v_column, v_feature);
  EXECUTE format('SELECT array_agg(k ORDER BY k), array_agg(n ORDER BY k) '
                 'FROM (SELECT %I::text AS k, count(*) AS n FROM %s WHERE %I IS NOT NULL GROUP BY 1) rows '
                 'WHERE k <> %L',
                 v_column, v_tbl, v_column, '')
    INTO v_customers, v_counts;
  PERFORM tollgate.set_row_counts(v_feature, coalesce(v_customers, '{}'), coalesce(v_counts, '{}'));
END
$_$;


--
-- Name: FUNCTION attach_row_gate(tbl regclass, customer_column name, feature text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.attach_row_gate(tbl regclass, customer_column name, feature text) IS 'Gates rows of an app table per customer: a trigger requires 1 of feature on INSERT (raising TG402 when over the limit), refunds it on DELETE, and moves it when customer_column changes. Use a lifetime feature for "at most 3 projects". Attaching counts the rows present exactly (a customer already over the limit stays over it, and a customer with no rows is set to 0), so detach, change rows, attach again gives exact counts. Call it as the table''s owner, for example from a Django migration: RunSQL(attach, reverse_sql=detach). Roles that write the table must be members of tollgate_app. TRUNCATE does not fire row triggers. Errors: TG404 unknown feature, TG422 unknown column or a rolling feature.';


--
-- Name: check(text, text, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate."check"(customer text, feature text, amount bigint DEFAULT 1) RETURNS tollgate.verdict
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
BEGIN
  RETURN tollgate._check($1, $2, $3, now());
END
$_$;


--
-- Name: FUNCTION "check"(customer text, feature text, amount bigint); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate."check"(customer text, feature text, amount bigint) IS 'The verdict consume would give for amount, changing nothing (no usage, no events, no customer registered) and taking no lock. Use it to show or hide a feature, and for boolean features (quota 0 = off, unlimited = on). Errors: TG404 unknown feature, TG422 invalid argument.';


--
-- Name: consume(text, text, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.consume(customer text, feature text, amount bigint DEFAULT 1) RETURNS tollgate.verdict
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
BEGIN
  RETURN tollgate._consume($1, $2, $3, now());
END
$_$;


--
-- Name: FUNCTION consume(customer text, feature text, amount bigint); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.consume(customer text, feature text, amount bigint) IS 'Counts amount of feature for customer in the current window if the plan''s limit allows, atomically and exactly under any concurrency. A blocked call (hard limit) counts nothing and returns allowed = false with the upgrade message; a soft limit allows the call and records the overage. Runs inside the caller''s transaction: a rollback gives the usage back and drops any event. A customer seen for the first time is registered on the default plan. Errors: TG404 unknown feature, TG422 invalid argument (customer empty or over 255 characters, feature over 63, amount not positive, or a soft or unlimited count that would pass 9223372036854775807).';


--
-- Name: define_feature(text, text, text, integer[], text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.define_feature(feature text, period text, enforcement text DEFAULT 'hard'::text, notify_at integer[] DEFAULT '{100}'::integer[], message text DEFAULT NULL::text, upgrade_prompt text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_feature text := $1;
  v_period text := $2;
  v_enforcement text := coalesce($3, 'hard');
  v_notify integer[] := coalesce($4, '{}');
  v_match text[];
  v_unit text;
  v_length integer := 1;
BEGIN
  IF v_feature IS NULL OR v_feature !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('feature name %L is not valid', v_feature),
      HINT = 'Use lower-case letters, digits and _, starting with a letter (at most 63).';
  END IF;
  v_match := regexp_match(v_period, '^(?:(month|billing|lifetime)|([1-9][0-9]{0,5})([dh])|rolling ([1-9][0-9]{0,3})d)$');
  IF v_match IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('period %L is not valid', v_period),
      HINT = 'Use month, billing, lifetime, <N>d, <N>h or rolling <N>d.';
  END IF;
  IF v_match[1] IS NOT NULL THEN
    v_unit := v_match[1];
  ELSIF v_match[2] IS NOT NULL THEN
    v_unit := CASE v_match[3] WHEN 'd' THEN 'day' ELSE 'hour' END;
    v_length := v_match[2]::integer;
  ELSE
    v_unit := 'rolling';
    v_length := v_match[4]::integer;
  END IF;
  IF v_enforcement NOT IN ('hard', 'soft') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('enforcement %L is not valid', v_enforcement), HINT = 'Use hard or soft.';
  END IF;
  IF EXISTS (SELECT FROM unnest(v_notify) t WHERE t IS NULL OR t NOT BETWEEN 1 AND 100) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('notify_at %s is not valid', v_notify), HINT = 'Use percents from 1 to 100.';
  END IF;
  v_notify := ARRAY(SELECT DISTINCT t FROM unnest(v_notify) t ORDER BY t);
  INSERT INTO tollgate.features AS f
    (feature, period, period_unit, period_length, enforcement, notify_at, message, upgrade_prompt)
  VALUES (v_feature, v_period, v_unit, v_length, v_enforcement, v_notify, $5, $6)
  ON CONFLICT ON CONSTRAINT features_pkey DO UPDATE
    SET period = EXCLUDED.period, period_unit = EXCLUDED.period_unit, period_length = EXCLUDED.period_length,
        enforcement = EXCLUDED.enforcement, notify_at = EXCLUDED.notify_at, message = EXCLUDED.message,
        upgrade_prompt = EXCLUDED.upgrade_prompt, updated_at = now()
  WHERE (f.period, f.enforcement, f.notify_at, f.message, f.upgrade_prompt)
        IS DISTINCT FROM (EXCLUDED.period, EXCLUDED.enforcement, EXCLUDED.notify_at, EXCLUDED.message, EXCLUDED.upgrade_prompt);
END
$_$;


--
-- Name: FUNCTION define_feature(feature text, period text, enforcement text, notify_at integer[], message text, upgrade_prompt text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.define_feature(feature text, period text, enforcement text, notify_at integer[], message text, upgrade_prompt text) IS 'Creates or updates a feature (owner only). period: month (calendar, UTC), billing (the subscription''s period; monthly from sign-up when free), <N>d / <N>h (fixed windows from sign-up), rolling <N>d (sliding, exact to the hour), lifetime (never resets). enforcement: hard blocks at the quota, soft allows and records the overage. notify_at: percents whose crossing writes an event. message: shown when blocked. upgrade_prompt: the email template of the upgrade prompt (NULL = none). A boolean feature (on/off per plan) is a lifetime feature whose limits are NULL (on) or 0 (off), asked with tollgate.check. Errors: TG422.';


--
-- Name: define_plan(text, boolean, text[], integer, text[]); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.define_plan(plan text, is_default boolean DEFAULT false, stripe_prices text[] DEFAULT '{}'::text[], rank integer DEFAULT 0, stripe_products text[] DEFAULT '{}'::text[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_plan text := $1;
  v_default boolean := coalesce($2, false);
  v_prices text[] := coalesce($3, '{}');
  v_rank integer := coalesce($4, 0);
  v_products text[] := coalesce($5, '{}');
BEGIN
  IF v_plan IS NULL OR v_plan !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('plan name %L is not valid', v_plan),
      HINT = 'Use lower-case letters, digits and _, starting with a letter (at most 63).';
  END IF;
  IF array_position(v_prices, NULL) IS NOT NULL OR array_position(v_products, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'stripe_prices and stripe_products must not contain NULL';
  END IF;
  IF v_default THEN
    UPDATE tollgate.plans p SET is_default = false, updated_at = now() WHERE p.is_default AND p.plan <> v_plan;
  ELSIF EXISTS (SELECT FROM tollgate.plans p WHERE p.plan = v_plan AND p.is_default) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('plan %s is the default plan; there must always be one', v_plan),
      HINT = 'Make another plan the default first: tollgate.define_plan(other, is_default => true).';
  END IF;
  INSERT INTO tollgate.plans AS p (plan, is_default, stripe_prices, stripe_products, rank)
  VALUES (v_plan, v_default, v_prices, v_products, v_rank)
  ON CONFLICT ON CONSTRAINT plans_pkey DO UPDATE
    SET is_default = EXCLUDED.is_default, stripe_prices = EXCLUDED.stripe_prices,
        stripe_products = EXCLUDED.stripe_products, rank = EXCLUDED.rank, updated_at = now()
  WHERE (p.is_default, p.stripe_prices, p.stripe_products, p.rank)
        IS DISTINCT FROM (EXCLUDED.is_default, EXCLUDED.stripe_prices, EXCLUDED.stripe_products, EXCLUDED.rank);
  -- prices may now mean another plan: remap stored subscriptions (the trigger
  -- recomputes their customers' plans)
  UPDATE tollgate.subscriptions s SET synced_at = s.synced_at
   WHERE s.plan IS DISTINCT FROM tollgate._plan_for(s.price_ids, s.product_ids);
END
$_$;


--
-- Name: FUNCTION define_plan(plan text, is_default boolean, stripe_prices text[], rank integer, stripe_products text[]); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.define_plan(plan text, is_default boolean, stripe_prices text[], rank integer, stripe_products text[]) IS 'Creates or updates a plan (owner only). is_default marks the plan of every customer without an entitled subscription (exactly one at a time); stripe_prices / stripe_products are the Stripe ids that mean this plan; rank decides between several entitled subscriptions (highest wins). Errors: TG422.';


--
-- Name: define_route(text, text, text, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.define_route(method text, pattern text, feature text, amount bigint DEFAULT 1) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
BEGIN
  IF $1 IS NULL OR $1 NOT IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', '*') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('method %L is not valid', $1),
      HINT = 'Use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or *.';
  END IF;
  IF $2 IS NULL OR $2 !~ '^/[^*[:space:]]*\*?$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('route pattern %L is not valid', $2),
      HINT = 'A path starting with /, optionally ending in * (for example /api/features/*).';
  END IF;
  IF NOT EXISTS (SELECT FROM tollgate.features f WHERE f.feature = $3) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('unknown feature %L', $3);
  END IF;
  IF $4 IS NULL OR $4 <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'amount must be a positive integer';
  END IF;
  INSERT INTO tollgate.routes AS r (method, pattern, feature, amount) VALUES ($1, $2, $3, $4)
  ON CONFLICT ON CONSTRAINT routes_pkey DO UPDATE SET feature = EXCLUDED.feature, amount = EXCLUDED.amount
  WHERE (r.feature, r.amount) IS DISTINCT FROM (EXCLUDED.feature, EXCLUDED.amount);
END
$_$;


--
-- Name: FUNCTION define_route(method text, pattern text, feature text, amount bigint); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.define_route(method text, pattern text, feature text, amount bigint) IS 'Gates an HTTP route for the Django middleware (owner only): method (or *) and a path pattern with an optional trailing *, consuming amount of feature per request. Errors: TG404 unknown feature, TG422 invalid argument.';


--
-- Name: detach_row_gate(regclass, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.detach_row_gate(tbl regclass, feature text) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
  v_trigger name;
BEGIN
  IF $1 IS NULL OR $2 IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'detach_row_gate needs a table and a feature';
  END IF;
  v_trigger := left('tollgate_gate_' || $2, 63);
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1 AND t.tgname = v_trigger) THEN
    RETURN false;
  END IF;
  EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, $1);
  RETURN true;
END
$_$;


--
-- Name: FUNCTION detach_row_gate(tbl regclass, feature text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.detach_row_gate(tbl regclass, feature text) IS 'Removes the row gate of feature from a table (the reverse of attach_row_gate); the counts stay as they are until a gate is attached again, which recounts. Returns false when the table had no such gate. Call it as the table''s owner.';


--
-- Name: finish_sync_run(bigint, integer, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.finish_sync_run(run bigint, subscriptions integer, error text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
BEGIN
  UPDATE tollgate.sync_runs r
     SET finished_at = now(), subscriptions = coalesce($2, 0), error = $3
   WHERE r.id = $1 AND r.finished_at IS NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('no running reconcile run %s', $1);
  END IF;
  PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended('tollgate stripe reconcile', 0));
  -- housekeeping: Stripe retries an event for up to 3 days; keep ids a month
  DELETE FROM tollgate.stripe_events e WHERE e.received_at < now() - interval '30 days';
  DELETE FROM tollgate.sync_runs r WHERE r.started_at < now() - interval '90 days';
END
$_$;


--
-- Name: FUNCTION finish_sync_run(run bigint, subscriptions integer, error text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.finish_sync_run(run bigint, subscriptions integer, error text) IS 'Sidecar: ends reconcile run (from start_sync_run, on the same connection) with the number of subscriptions it synced and, when it stopped early, the error; releases the reconcile lock. Forgets webhook event ids older than 30 days and runs older than 90. Errors: TG404 when the run is unknown or finished.';


--
-- Name: funnel(timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.funnel(since timestamp with time zone, until timestamp with time zone) RETURNS TABLE(feature text, hit_threshold bigint, hit_limit bigint, prompted bigint, converted bigint, attributed bigint, organic bigint, conversion_rate double precision, median_seconds double precision, p90_seconds double precision)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    SET jit TO 'off'
    SET work_mem TO '64MB'
    AS $_$
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
  WITH cohort AS (
    -- one pass over the events of the range, hashed by feature and customer
    -- and by customer alone (the total counts each customer once): did they
    -- hit the limit, and were they sent a prompt for one of these events
    -- (sent after the event, so not before since)
    SELECT e.feature, GROUPING(e.feature) = 1 AS total,
           bool_or(e.kind = 'limit_reached') AS hit_limit,
           bool_or(m.event_id IS NOT NULL) AS prompted
      FROM tollgate.events e
      LEFT JOIN tollgate.emails m ON m.event_id = e.id AND m.status = 'sent' AND m.sent_at >= v_since
     WHERE e.created_at >= v_since AND e.created_at < v_until AND e.plan = v_default
     GROUP BY GROUPING SETS ((e.feature, e.customer), (e.customer))
  ), c_agg AS (
    SELECT c.feature, count(*) AS hit_threshold, count(*) FILTER (WHERE c.hit_limit) AS hit_limit,
           count(*) FILTER (WHERE c.prompted) AS prompted
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
         coalesce(v.converted, 0), coalesce(v.attributed, 0), coalesce(v.converted - v.attributed, 0),
         coalesce(v.attributed, 0)::double precision / nullif(c.prompted, 0),
         v.median_seconds, v.p90_seconds
    FROM (SELECT * FROM v_agg WHERE v_agg.total OR v_agg.feature IS NOT NULL) v
    FULL JOIN c_agg c ON coalesce(c.feature, '') = CASE WHEN v.total THEN '' ELSE v.feature END
   ORDER BY c.feature IS NULL, c.feature;
END
$_$;


--
-- Name: FUNCTION funnel(since timestamp with time zone, until timestamp with time zone); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.funnel(since timestamp with time zone, until timestamp with time zone) IS 'The conversion funnel of the customers on the default plan whose limit events happened in [since, until): one row per feature and a total row (feature NULL), counting customers. hit_threshold: had any event; hit_limit: a limit_reached event; prompted: were sent an upgrade prompt for one; attributed: converted to a paid plan with the conversion attributed to such a prompt (at any time); organic: converted in the range with no prompt to attribute it to (in a feature''s row, those who hit that feature before converting; the total has them all); converted: attributed or organic; conversion_rate: attributed / prompted (NULL when none were prompted); median_seconds and p90_seconds: from prompt to attributed conversion. Errors: TG422 for a NULL bound or since after until.';


--
-- Name: last_sync_run(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.last_sync_run(OUT run bigint, OUT started_at timestamp with time zone, OUT finished_at timestamp with time zone, OUT subscriptions integer) RETURNS record
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $$
  SELECT r.id, r.started_at, r.finished_at, r.subscriptions
    FROM tollgate.sync_runs r
   WHERE r.finished_at IS NOT NULL AND r.error IS NULL
   ORDER BY r.finished_at DESC
   LIMIT 1
$$;


--
-- Name: FUNCTION last_sync_run(OUT run bigint, OUT started_at timestamp with time zone, OUT finished_at timestamp with time zone, OUT subscriptions integer); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.last_sync_run(OUT run bigint, OUT started_at timestamp with time zone, OUT finished_at timestamp with time zone, OUT subscriptions integer) IS 'Sidecar: the last reconcile run that finished without error (all NULL when none has).';


--
-- Name: link_checkout_session(text, text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.link_checkout_session(stripe_checkout_session text, stripe_customer text, client_reference_id text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_session text := $1;
  v_stripe text := $2;
  v_customer text := $3;
BEGIN
  IF v_session IS NULL OR v_session !~ '^cs_[A-Za-z0-9_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_checkout_session %L is not a Stripe Checkout Session id', v_session),
      HINT = 'Checkout Session ids look like cs_test_a1b2c3.';
  END IF;
  IF v_stripe IS NULL OR v_stripe !~ '^cus_[A-Za-z0-9]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_customer %L is not a Stripe customer id', v_stripe),
      HINT = 'Stripe customer ids look like cus_NffrFeUfNV2Hib.';
  END IF;
  IF v_customer IS NULL OR v_customer = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'client_reference_id must be a non-empty text';
  END IF;
  RETURN tollgate._link_stripe_customer(v_stripe, v_customer, 'checkout', v_session);
END
$_$;


--
-- Name: FUNCTION link_checkout_session(stripe_checkout_session text, stripe_customer text, client_reference_id text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.link_checkout_session(stripe_checkout_session text, stripe_customer text, client_reference_id text) IS 'Sidecar: records that a completed Checkout Session (stripe_checkout_session) with client_reference_id was paid by stripe_customer, so that Stripe customer''s subscriptions belong to that customer unless the app''s own link (set_customer) or the Stripe customer''s metadata.tollgate_customer says otherwise. Registers the customer when new. Returns the customer the Stripe customer now belongs to. Errors: TG422 for malformed ids.';


--
-- Name: note_blocked(text, text, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.note_blocked(customer text, feature text, amount bigint DEFAULT 1) RETURNS tollgate.verdict
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
BEGIN
  RETURN tollgate._note($1, $2, $3, now());
END
$_$;


--
-- Name: FUNCTION note_blocked(customer text, feature text, amount bigint); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.note_blocked(customer text, feature text, amount bigint) IS 'For a call that was blocked with TG402 (tollgate.require, a row gate): the error rolled back the call''s limit_reached event with its transaction, so no upgrade prompt would follow. Call this after the rollback, in a transaction that commits: when the call would still be blocked it records the window''s limit_reached event (once, however often it is called, and under the same rule as consume); it never counts usage. Returns the verdict. The Django helper calls it for you. Errors: TG404 unknown feature, TG422 invalid argument.';


--
-- Name: outbox_begin(bigint, integer, text, text, text, text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.outbox_begin(id bigint, attempt integer, provider text, sender text, subject text, body_text text, body_html text) RETURNS TABLE(email_to text, email_from text, email_subject text, email_text text, email_html text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_id bigint := $1;
  v_attempt integer := $2;
  v_provider text := $3;
BEGIN
  IF v_provider IS NULL OR v_provider = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'provider must be a non-empty text';
  END IF;
  IF $4 IS NULL OR $5 IS NULL OR $6 IS NULL OR $7 IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'sender, subject, body_text and body_html must not be NULL';
  END IF;
  -- The first hand-off stores the rendering; later ones get it back.
  RETURN QUERY
  UPDATE tollgate.emails m
     SET handed_off_at = pg_catalog.now(),
         provider = v_provider,
         sender = coalesce(m.sender, $4),
         subject = coalesce(m.subject, $5),
         body_text = coalesce(m.body_text, $6),
         body_html = coalesce(m.body_html, $7)
   WHERE m.id = v_id AND m.attempts = v_attempt AND m.status = 'sending'
  RETURNING m.to_email, m.sender, m.subject, m.body_text, m.body_html;
END
$_$;


--
-- Name: FUNCTION outbox_begin(id bigint, attempt integer, provider text, sender text, subject text, body_text text, body_html text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.outbox_begin(id bigint, attempt integer, provider text, sender text, subject text, body_text text, body_html text) IS 'Records that the claim (id, attempt) starts handing the email to provider, and returns the email to send: the one stored by the first hand-off of this row if there was one, otherwise the given rendering, which is stored. Returns no row when the claim was lost (another worker took the row over): then do not send. Errors: TG422 for an empty provider or a NULL part.';


--
-- Name: outbox_claim(text, integer, interval); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.outbox_claim(worker text, n integer DEFAULT 1, stale interval DEFAULT '00:05:00'::interval) RETURNS TABLE(id bigint, attempt integer, interrupted boolean, last_provider text, template text, customer text, to_email text, feature text, plan text, used bigint, quota bigint, period_start timestamp with time zone, resets_at timestamp with time zone, message text, event_at timestamp with time zone, sender text, subject text, body_text text, body_html text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_worker text := $1;
  v_n integer := $2;
  v_stale interval := $3;
BEGIN
  IF v_worker IS NULL OR v_worker = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'worker must be a non-empty text';
  END IF;
  IF v_n IS NULL OR v_n < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('n must be a positive integer, not %s', coalesce(v_n::text, 'NULL'));
  END IF;
  IF v_stale IS NULL OR v_stale <= interval '0' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stale must be a positive interval, not %s', coalesce(v_stale::text, 'NULL'));
  END IF;

  RETURN QUERY
  WITH picked AS (
    SELECT m.id, m.customer
      FROM tollgate.emails m
     WHERE m.status IN ('pending', 'failed', 'sending')
       AND m.next_attempt_at <= pg_catalog.now()
       AND CASE WHEN m.status <> 'sending' THEN true
                -- a claim of a worker that is gone, or one that is stale
                WHEN m.claimed_at < pg_catalog.now() - v_stale THEN true
                WHEN m.claimed_by = v_worker THEN false
                ELSE tollgate._outbox_worker_gone(m.claimed_by) END
     ORDER BY m.next_attempt_at, m.id
     LIMIT v_n
       FOR UPDATE OF m SKIP LOCKED
  ), claimed AS (
    -- The customer's address and opt-out are read again now: an opt-out or a
    -- removed address since collection skips the email, unless an earlier
    -- attempt already handed it off (then it is finished as it began).
    UPDATE tollgate.emails m
       SET status = CASE WHEN m.handed_off_at IS NULL AND (c.email IS NULL OR c.email_opt_out)
                         THEN 'skipped' ELSE 'sending' END,
           last_error = CASE WHEN m.handed_off_at IS NOT NULL THEN m.last_error
                             WHEN c.email IS NULL THEN 'the customer has no email address'
                             WHEN c.email_opt_out THEN 'the customer opted out of upgrade prompts'
                             ELSE m.last_error END,
           -- once rendered, the recipient is part of the stored email too
           to_email = CASE WHEN m.subject IS NULL THEN c.email ELSE m.to_email END,
           attempts = m.attempts + 1,
           claimed_by = v_worker,
           claimed_at = pg_catalog.now()
      FROM picked
      LEFT JOIN tollgate.customers c ON c.customer = picked.customer
     WHERE m.id = picked.id
    RETURNING m.*
  )
  SELECT m.id, m.attempts, m.handed_off_at IS NOT NULL, m.provider, m.template, m.customer, m.to_email,
         m.feature, e.plan, e.used, e.quota, m.period_start, e.period_end, f.message, e.created_at,
         m.sender, m.subject, m.body_text, m.body_html
    FROM claimed m
    JOIN tollgate.events e ON e.id = m.event_id
    LEFT JOIN tollgate.features f ON f.feature = m.feature
   WHERE m.status = 'sending'
   ORDER BY m.next_attempt_at, m.id;
END
$_$;


--
-- Name: FUNCTION outbox_claim(worker text, n integer, stale interval); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.outbox_claim(worker text, n integer, stale interval) IS 'Claims up to n emails that are due for worker (FOR UPDATE SKIP LOCKED: replicas never get the same row) and returns what rendering and sending them needs. Due: pending, failed whose next_attempt_at has come, and sending rows whose worker is gone (see tollgate.outbox_register) or whose claim is older than stale. attempt identifies this claim in tollgate.outbox_begin and tollgate.outbox_failed. interrupted says that an earlier claim was cut off while handing the email to last_provider; sender, subject, body_text and body_html are then the email as it was handed off, to be sent byte for byte. Emails whose customer opted out or has no address any more are skipped instead of returned. Errors: TG422 for an empty worker, an n below 1 or a stale interval that is not positive.';


--
-- Name: outbox_collect(integer); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.outbox_collect(max_events integer DEFAULT 500) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $$
DECLARE
  v_n integer;
BEGIN
  IF max_events IS NULL OR max_events < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('max_events must be a positive integer, not %s', coalesce(max_events::text, 'NULL'));
  END IF;
  -- Replicas collecting at once take disjoint events (SKIP LOCKED); the
  -- unique key of emails keeps one email per customer, feature and window
  -- even for events of one window collected by different replicas.
  WITH picked AS (
    SELECT e.id
      FROM tollgate.events e
     WHERE e.processed_at IS NULL
     ORDER BY e.id
     LIMIT max_events
       FOR UPDATE SKIP LOCKED
  ), done AS (
    UPDATE tollgate.events e SET processed_at = pg_catalog.now()
      FROM picked
     WHERE e.id = picked.id
    RETURNING e.id, e.kind, e.customer, e.feature, e.period_start
  ), emails AS (
    INSERT INTO tollgate.emails AS m (event_id, customer, feature, period_start, template, to_email, status, last_error)
    SELECT d.id, d.customer, d.feature, d.period_start, f.upgrade_prompt, c.email,
           CASE WHEN c.email IS NULL OR c.email_opt_out THEN 'skipped' ELSE 'pending' END,
           CASE WHEN c.email IS NULL THEN 'the customer has no email address'
                WHEN c.email_opt_out THEN 'the customer opted out of upgrade prompts' END
      FROM done d
      JOIN tollgate.features f ON f.feature = d.feature
      LEFT JOIN tollgate.customers c ON c.customer = d.customer
     WHERE d.kind = 'limit_reached' AND f.upgrade_prompt IS NOT NULL
     ORDER BY d.id
    ON CONFLICT (customer, feature, period_start) DO NOTHING
  )
  SELECT count(*) INTO v_n FROM done;
  RETURN v_n;
END
$$;


--
-- Name: FUNCTION outbox_collect(max_events integer); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.outbox_collect(max_events integer) IS 'Turns up to max_events unprocessed events into outbox rows and returns how many events it processed (call it until it returns less than max_events). A limit_reached event of a feature with an upgrade prompt becomes one pending email, or a skipped one when the customer has no email address or opted out; at most one per customer, feature and window. Threshold events and features without a prompt are marked processed with no email. Safe to run from any number of replicas at once. Errors: TG422 for a max_events below 1.';


--
-- Name: outbox_counts(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.outbox_counts() RETURNS TABLE(status text, emails bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $$
  SELECT s.status, count(m.id)
    FROM unnest(ARRAY['pending', 'sending', 'sent', 'failed', 'dead', 'skipped']) AS s(status)
    LEFT JOIN tollgate.emails m ON m.status = s.status
   GROUP BY s.status
   ORDER BY s.status
$$;


--
-- Name: FUNCTION outbox_counts(); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.outbox_counts() IS 'How many emails the outbox holds in each status (pending, sending, sent, failed, dead, skipped): for metrics and reports.';


--
-- Name: outbox_failed(bigint, integer, text, interval, boolean, integer); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.outbox_failed(id bigint, attempt integer, error text, retry_in interval, permanent boolean, max_attempts integer) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_id bigint := $1;
  v_attempt integer := $2;
  v_error text := $3;
  v_retry_in interval := $4;
  v_permanent boolean := $5;
  v_max integer := $6;
  v_status text;
BEGIN
  IF v_permanent IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'permanent must be true or false, not NULL';
  END IF;
  IF v_max IS NULL OR v_max < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('max_attempts must be a positive integer, not %s', coalesce(v_max::text, 'NULL'));
  END IF;
  UPDATE tollgate.emails m
     SET status = CASE WHEN v_permanent OR m.attempts >= v_max THEN 'dead' ELSE 'failed' END,
         next_attempt_at = pg_catalog.now() + greatest(coalesce(v_retry_in, interval '0'), interval '0'),
         handed_off_at = NULL,
         last_error = coalesce(v_error, 'unknown error')
   WHERE m.id = v_id AND m.attempts = v_attempt AND m.status = 'sending'
  RETURNING m.status INTO v_status;
  RETURN v_status;
END
$_$;


--
-- Name: FUNCTION outbox_failed(id bigint, attempt integer, error text, retry_in interval, permanent boolean, max_attempts integer); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.outbox_failed(id bigint, attempt integer, error text, retry_in interval, permanent boolean, max_attempts integer) IS 'Records that the claim (id, attempt) failed with error (the provider''s message). The row is retried after retry_in (the database''s clock), or is dead when permanent or once it has had max_attempts attempts. Returns the new status, failed or dead, or NULL when the claim was lost meanwhile (nothing changes). Errors: TG422 for a NULL permanent or a max_attempts below 1.';


--
-- Name: outbox_register(text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.outbox_register(worker text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $$
BEGIN
  IF worker IS NULL OR worker = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'worker must be a non-empty text';
  END IF;
  -- Waits only while a claim is checking whether this name is alive (until
  -- that claim commits). Repeated calls on one session are harmless.
  PERFORM pg_catalog.pg_advisory_lock(1953459308, pg_catalog.hashtext(worker));
END
$$;


--
-- Name: FUNCTION outbox_register(worker text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.outbox_register(worker text) IS 'Marks worker as alive for as long as the calling session lasts (a session advisory lock), so that when it dies its claimed emails are taken over at once by the next tollgate.outbox_claim. Call it on a connection the worker keeps open, such as its LISTEN connection, before claiming. Worker names must be unique per process. Errors: TG422 for an empty name.';


--
-- Name: outbox_sent(bigint, text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.outbox_sent(id bigint, provider text, provider_id text) RETURNS double precision
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_id bigint := $1;
  v_provider text := $2;
  v_provider_id text := $3;
  v_seconds double precision;
BEGIN
  IF v_provider IS NULL OR v_provider = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'provider must be a non-empty text';
  END IF;
  -- The provider accepted the email, so this holds whoever claims the row
  -- now: even a row given up as dead meanwhile was in fact sent.
  UPDATE tollgate.emails m
     SET status = 'sent', sent_at = pg_catalog.now(), provider = v_provider, provider_id = v_provider_id,
         handed_off_at = NULL, last_error = NULL
   WHERE m.id = v_id AND m.status <> 'sent'
  RETURNING extract(epoch FROM pg_catalog.now() - (SELECT e.created_at FROM tollgate.events e WHERE e.id = m.event_id))
    INTO v_seconds;
  RETURN v_seconds;
END
$_$;


--
-- Name: FUNCTION outbox_sent(id bigint, provider text, provider_id text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.outbox_sent(id bigint, provider text, provider_id text) IS 'Marks email id as sent by provider (resend, smtp or log) with the provider''s message id, and returns the seconds from its event to now; NULL when it was marked sent already. Errors: TG422 for an empty provider.';


--
-- Name: record_stripe_event(text, text, text, text, timestamp with time zone); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.record_stripe_event(id text, type text, api_version text DEFAULT NULL::text, object_id text DEFAULT NULL::text, stripe_created timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_id text := $1;
  v_type text := $2;
BEGIN
  IF v_id IS NULL OR v_id !~ '^evt_[A-Za-z0-9_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('id %L is not a Stripe event id', v_id),
      HINT = 'Stripe event ids look like evt_1NG8Du2eZvKYlo2CUI79vXWy.';
  END IF;
  IF v_type IS NULL OR v_type = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'type must be a non-empty text';
  END IF;
  -- A concurrent delivery of the same event waits here for the first one's
  -- transaction, then finds the row (false) or, if that one rolled back,
  -- records the event itself.
  INSERT INTO tollgate.stripe_events AS e (id, type, api_version, object_id, stripe_created)
  VALUES (v_id, v_type, $3, $4, $5)
  ON CONFLICT ON CONSTRAINT stripe_events_pkey DO NOTHING;
  RETURN FOUND;
END
$_$;


--
-- Name: FUNCTION record_stripe_event(id text, type text, api_version text, object_id text, stripe_created timestamp with time zone); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.record_stripe_event(id text, type text, api_version text, object_id text, stripe_created timestamp with time zone) IS 'Sidecar: records a Stripe webhook event (Event.id, .type, .api_version, .data.object.id, .created) once. Returns true the first time and false for a duplicate. Call it in the transaction that applies the event''s effect, so a rolled-back effect leaves the event unrecorded and a retry applies it. Errors: TG422 for a malformed id.';


--
-- Name: refund(text, text, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.refund(customer text, feature text, amount bigint DEFAULT 1) RETURNS tollgate.verdict
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
BEGIN
  RETURN tollgate._refund($1, $2, $3, now());
END
$_$;


--
-- Name: FUNCTION refund(customer text, feature text, amount bigint); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.refund(customer text, feature text, amount bigint) IS 'Gives amount of usage back in the current window, for work that was counted but not done. A refund is bounded by what the customer used in the window: it never takes usage below 0, and never reaches a window already closed. Returns the verdict after the refund; allowed says whether one more unit would be allowed. Events already written stay: each fires once per window. Errors: TG404 unknown feature, TG422 invalid argument.';


--
-- Name: remove_feature(text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.remove_feature(feature text) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
  DELETE FROM tollgate.features f WHERE f.feature = $1
$_$;


--
-- Name: FUNCTION remove_feature(feature text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.remove_feature(feature text) IS 'Removes a feature with its limits and routes (owner only). Its usage history and events are kept.';


--
-- Name: remove_limit(text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.remove_limit(plan text, feature text) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
  DELETE FROM tollgate.limits l WHERE l.plan = $1 AND l.feature = $2
$_$;


--
-- Name: FUNCTION remove_limit(plan text, feature text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.remove_limit(plan text, feature text) IS 'Removes plan''s limit for feature (owner only): the plan no longer includes the feature.';


--
-- Name: remove_plan(text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.remove_plan(plan text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
BEGIN
  IF EXISTS (SELECT FROM tollgate.plans p WHERE p.plan = $1 AND p.is_default) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('plan %s is the default plan and cannot be removed', $1),
      HINT = 'Make another plan the default first.';
  END IF;
  DELETE FROM tollgate.plans p WHERE p.plan = $1;
  -- subscriptions that meant this plan now mean another one, or none
  UPDATE tollgate.subscriptions s SET synced_at = s.synced_at WHERE s.plan = $1;
END
$_$;


--
-- Name: FUNCTION remove_plan(plan text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.remove_plan(plan text) IS 'Removes a plan and its limits (owner only); its customers fall back to what their subscriptions mean, or the default plan. Errors: TG422 for the default plan.';


--
-- Name: remove_route(text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.remove_route(method text, pattern text) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
  DELETE FROM tollgate.routes r WHERE r.method = $1 AND r.pattern = $2
$_$;


--
-- Name: FUNCTION remove_route(method text, pattern text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.remove_route(method text, pattern text) IS 'Stops gating a route (owner only).';


--
-- Name: require(text, text, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.require(customer text, feature text, amount bigint DEFAULT 1) RETURNS tollgate.verdict
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v tollgate.verdict := tollgate._consume($1, $2, $3, now());
BEGIN
  IF NOT v.allowed THEN
    PERFORM tollgate._raise_quota_exceeded(v, $3);
  END IF;
  RETURN v;
END
$_$;


--
-- Name: FUNCTION require(customer text, feature text, amount bigint); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.require(customer text, feature text, amount bigint) IS 'Like consume, but a blocked call raises SQLSTATE TG402 (DETAIL: JSON with feature, customer, plan, used, quota, resets_at, amount; HINT: the upgrade message), so the caller''s transaction cannot go on unnoticed.';


--
-- Name: routes(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.routes() RETURNS TABLE(method text, pattern text, feature text, amount bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $$
  SELECT r.method, r.pattern, r.feature, r.amount
    FROM tollgate.routes r
   ORDER BY r.pattern LIKE '%*', length(r.pattern) DESC, r.pattern, r.method = '*', r.method
$$;


--
-- Name: FUNCTION routes(); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.routes() IS 'The gated routes, for the Django middleware, most specific first: exact paths before prefixes (a trailing *), longer prefixes before shorter ones, and a named method before *. The first route that matches a request applies.';


--
-- Name: set_customer(text, text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.set_customer(customer text, email text DEFAULT NULL::text, stripe_customer text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_customer text := $1;
  v_email text := $2;
  v_stripe text := $3;
BEGIN
  PERFORM tollgate._check_text('customer', v_customer, 255);
  IF v_email IS NOT NULL AND (pg_catalog.length(v_email) > 320 OR v_email !~ '^[^@\s]+@[^@\s]+$') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('email %L is not an email address of at most 320 characters', left(v_email, 400));
  END IF;
  IF v_stripe IS NOT NULL AND (pg_catalog.length(v_stripe) > 255 OR v_stripe !~ '^cus_[A-Za-z0-9]+$') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_customer %L is not a Stripe customer id of at most 255 characters', left(v_stripe, 300)),
      HINT = 'Stripe customer ids look like cus_NffrFeUfNV2Hib.';
  END IF;
  BEGIN
    INSERT INTO tollgate.customers AS c (customer, email, stripe_customer)
    VALUES (v_customer, v_email, v_stripe)
    ON CONFLICT ON CONSTRAINT customers_pkey DO UPDATE
      SET email = coalesce(EXCLUDED.email, c.email),
          stripe_customer = coalesce(EXCLUDED.stripe_customer, c.stripe_customer),
          updated_at = now();
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_customer %s already belongs to another customer', v_stripe),
      DETAIL = (SELECT format('customer %L', c.customer) FROM tollgate.customers c WHERE c.stripe_customer = v_stripe);
  END;
  IF v_stripe IS NOT NULL THEN
    -- link this Stripe customer's subscriptions (the trigger recomputes plans)
    -- subscriptions of the customer's previous Stripe customer go to whoever owns that one now
    UPDATE tollgate.subscriptions s SET customer = tollgate._stripe_owner(s.stripe_customer)
     WHERE s.customer = v_customer AND s.stripe_customer <> v_stripe
       AND s.customer IS DISTINCT FROM tollgate._stripe_owner(s.stripe_customer);
    UPDATE tollgate.subscriptions s SET customer = v_customer
     WHERE s.stripe_customer = v_stripe AND s.customer IS DISTINCT FROM v_customer;
  END IF;
END
$_$;


--
-- Name: FUNCTION set_customer(customer text, email text, stripe_customer text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.set_customer(customer text, email text, stripe_customer text) IS 'Registers customer, or updates it: email (where upgrade prompts go) and stripe_customer (the Stripe Customer.id that links their subscriptions). NULL leaves a value as it is. Errors: TG422 for an empty customer or one over 255 characters, a malformed email or one over 320 characters, a malformed Stripe id or one over 255 characters, or a Stripe id that belongs to another customer.';


--
-- Name: set_email_opt_out(text, boolean); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.set_email_opt_out(customer text, opted_out boolean) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_customer text := $1;
  v_opted_out boolean := $2;
BEGIN
  IF v_customer IS NULL OR v_customer = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'customer must be a non-empty text';
  END IF;
  IF v_opted_out IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'opted_out must be true or false, not NULL';
  END IF;
  -- An unknown customer is registered, so an opt-out given before their
  -- first gated call is kept.
  INSERT INTO tollgate.customers AS c (customer, email_opt_out)
  VALUES (v_customer, v_opted_out)
  ON CONFLICT ON CONSTRAINT customers_pkey DO UPDATE
    SET email_opt_out = EXCLUDED.email_opt_out, updated_at = now()
  WHERE c.email_opt_out IS DISTINCT FROM EXCLUDED.email_opt_out;
END
$_$;


--
-- Name: FUNCTION set_email_opt_out(customer text, opted_out boolean); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.set_email_opt_out(customer text, opted_out boolean) IS 'Opts customer out of upgrade-prompt emails (opted_out = true) or back in (false). Takes effect for emails not yet handed to the provider: those are skipped. An unknown customer is registered on the default plan. Errors: TG422 for an empty customer or a NULL opted_out.';


--
-- Name: set_limit(text, text, bigint); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.set_limit(plan text, feature text, quota bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
BEGIN
  IF NOT EXISTS (SELECT FROM tollgate.plans p WHERE p.plan = $1) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('unknown plan %L', $1);
  END IF;
  IF NOT EXISTS (SELECT FROM tollgate.features f WHERE f.feature = $2) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('unknown feature %L', $2);
  END IF;
  IF $3 < 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('quota must be 0 or more, not %s', $3), HINT = 'NULL means unlimited.';
  END IF;
  INSERT INTO tollgate.limits AS l (plan, feature, quota) VALUES ($1, $2, $3)
  ON CONFLICT ON CONSTRAINT limits_pkey DO UPDATE SET quota = EXCLUDED.quota
  WHERE l.quota IS DISTINCT FROM EXCLUDED.quota;
END
$_$;


--
-- Name: FUNCTION set_limit(plan text, feature text, quota bigint); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.set_limit(plan text, feature text, quota bigint) IS 'Sets what plan may use of feature per window (owner only): a number, NULL = unlimited (or "on"), 0 = not included ("off"). Errors: TG404 unknown plan or feature, TG422 negative quota.';


--
-- Name: set_row_counts(text, text[], bigint[]); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.set_row_counts(feature text, customers text[], counts bigint[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_feature text := $1;
  v_unit text;
  v_customer text;
  v_count bigint;
  v_n bigint := 0;
  r tollgate.usage;
BEGIN
  PERFORM tollgate._check_text('feature', v_feature, 63);
  IF $2 IS NULL OR $3 IS NULL OR cardinality($2) <> cardinality($3) OR array_position($2, NULL) IS NOT NULL
     OR array_position($3, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'customers and counts must be arrays of the same length without NULLs';
  END IF;
  IF EXISTS (SELECT FROM unnest($3) n WHERE n < 0) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'counts must not be negative';
  END IF;
  PERFORM tollgate._check_text('customer', c, 255) FROM unnest($2) c;
  SELECT f.period_unit INTO v_unit FROM tollgate.features f WHERE f.feature = v_feature;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('unknown feature %L', v_feature);
  END IF;
  IF v_unit = 'rolling' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('feature %s has a rolling period; a row gate needs a fixed or lifetime one', v_feature);
  END IF;

  FOR v_customer, v_count IN
    SELECT k.customer, coalesce(max(k.n), 0)
      FROM (SELECT c AS customer, n FROM unnest($2, $3) AS t(c, n)
            UNION ALL
            SELECT u.customer, NULL FROM tollgate.usage u WHERE u.feature = v_feature) k
     GROUP BY k.customer
     ORDER BY k.customer
  LOOP
    r := tollgate._usage_row(v_customer, v_feature, now(), true);
    DELETE FROM tollgate.usage_shards s
     WHERE s.customer = v_customer AND s.feature = v_feature AND s.window_start = r.window_start;
    r.used := v_count;
    r.limit_hit := false;
    r.next_mark := tollgate._next_mark(v_feature, r.used, r.quota, r.soft);
    PERFORM tollgate._save_usage(r);
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END
$_$;


--
-- Name: FUNCTION set_row_counts(feature text, customers text[], counts bigint[]); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.set_row_counts(feature text, customers text[], counts bigint[]) IS 'Used by attach_row_gate: sets feature''s usage in the current window to counts for customers, and to 0 for every other customer with usage of it. Writes no events. Returns how many customers it set. Errors: TG404 unknown feature, TG422 invalid argument or a rolling feature.';


--
-- Name: set_setting(text, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.set_setting(key text, value text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_window interval;
BEGIN
  IF $1 IS NULL OR $1 NOT IN ('past_due_is_grace', 'attribution_window') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('unknown setting %L', $1),
      HINT = 'Known settings: past_due_is_grace, attribution_window.';
  END IF;
  IF $1 = 'past_due_is_grace' AND $2 IS DISTINCT FROM 'true' AND $2 IS DISTINCT FROM 'false' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'past_due_is_grace is true or false';
  END IF;
  IF $1 = 'attribution_window' THEN
    BEGIN
      v_window := $2::interval;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
      v_window := NULL;
    END;
    IF v_window IS NULL OR v_window <= interval '0' THEN
      RAISE EXCEPTION USING ERRCODE = 'TG422',
        MESSAGE = format('attribution_window is a positive interval, not %L', $2),
        HINT = 'For example ''30 days''.';
    END IF;
  END IF;
  INSERT INTO tollgate.settings AS s (key, value) VALUES ($1, $2)
  ON CONFLICT ON CONSTRAINT settings_pkey DO UPDATE SET value = EXCLUDED.value;
  IF $1 = 'past_due_is_grace' THEN
    PERFORM tollgate._refresh_customer(s.customer)
       FROM tollgate.subscriptions s WHERE s.status = 'past_due' AND s.customer IS NOT NULL;
  END IF;
END
$_$;


--
-- Name: FUNCTION set_setting(key text, value text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.set_setting(key text, value text) IS 'Sets a behaviour setting (owner only): past_due_is_grace (true/false: a past_due subscription keeps its plan); attribution_window (a positive interval, default 30 days: how long after an upgrade prompt a conversion is attributed to it). Errors: TG422 for an unknown setting or a bad value.';


--
-- Name: start_sync_run(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.start_sync_run() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $$
DECLARE
  v_run bigint;
BEGIN
  IF NOT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended('tollgate stripe reconcile', 0)) THEN
    RETURN NULL;
  END IF;
  INSERT INTO tollgate.sync_runs AS r DEFAULT VALUES RETURNING r.id INTO v_run;
  RETURN v_run;
END
$$;


--
-- Name: FUNCTION start_sync_run(); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.start_sync_run() IS 'Sidecar: starts a reconcile run if no other session runs one, and returns its id; NULL when another session holds the reconcile lock. The lock belongs to the calling session: call finish_sync_run on the same connection.';


--
-- Name: stripe_event_seen(text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.stripe_event_seen(id text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
  SELECT EXISTS (SELECT FROM tollgate.stripe_events e WHERE e.id = $1)
$_$;


--
-- Name: FUNCTION stripe_event_seen(id text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.stripe_event_seen(id text) IS 'Sidecar: whether the Stripe event (Event.id) was recorded already: a redelivery can be answered without re-fetching anything.';


--
-- Name: sync_subscription(text, text, text, text[], text[], timestamp with time zone, timestamp with time zone, boolean, timestamp with time zone, timestamp with time zone, text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.sync_subscription(stripe_subscription text, stripe_customer text, status text, price_ids text[], product_ids text[], current_period_start timestamp with time zone, current_period_end timestamp with time zone, cancel_at_period_end boolean, stripe_created timestamp with time zone, fetched_at timestamp with time zone, tollgate_customer text DEFAULT NULL::text, OUT customer text, OUT plan text, OUT applied boolean) RETURNS record
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
DECLARE
  v_sub text := $1;
  v_stripe text := $2;
  v_status text := $3;
  v_prices text[] := coalesce($4, '{}');
  v_products text[] := coalesce($5, '{}');
  v_start timestamptz := $6;
  v_end timestamptz := $7;
  v_cancel boolean := coalesce($8, false);
  v_created timestamptz := $9;
  -- a replica whose clock runs ahead must not make its fetches win forever
  -- (least ignores NULL: a NULL fetched_at is rejected below)
  v_fetched timestamptz := least($10, clock_timestamp());
  v_meta text := nullif($11, '');
  v_owner text;
BEGIN
  IF v_sub IS NULL OR v_sub !~ '^sub_[A-Za-z0-9_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_subscription %L is not a Stripe subscription id', v_sub),
      HINT = 'Stripe subscription ids look like sub_1MowQVLkdIwHu7ixeRlqHVzs.';
  END IF;
  IF v_stripe IS NULL OR v_stripe !~ '^cus_[A-Za-z0-9]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('stripe_customer %L is not a Stripe customer id', v_stripe),
      HINT = 'Stripe customer ids look like cus_NffrFeUfNV2Hib.';
  END IF;
  IF v_status IS NULL OR v_status !~ '^[a-z_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('status %L is not a Stripe subscription status', v_status);
  END IF;
  IF array_position(v_prices, NULL) IS NOT NULL OR array_position(v_products, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'price_ids and product_ids must not contain NULL';
  END IF;
  -- Stripe timestamps are never 0: a period at the epoch is a missing field
  -- read as 0 (API 2025-03-31 moved the periods to the subscription items)
  IF v_start <= 'epoch' OR v_end <= 'epoch' OR v_created <= 'epoch' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'a Stripe timestamp is at or before 1970-01-01',
      HINT = 'Pass NULL for a period Stripe did not give; read periods from the subscription items on newer APIs.';
  END IF;
  IF $10 IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'fetched_at must not be NULL',
      HINT = 'Pass the time the fetch from Stripe started.';
  END IF;

  -- An older fetch never overwrites a newer one: the fetch that started last
  -- saw every change made before it started. The row lock makes concurrent
  -- syncs of one subscription take turns; the upsert's WHERE covers two
  -- first inserts racing.
  SELECT s.customer, s.plan INTO customer, plan
    FROM tollgate.subscriptions s
   WHERE s.stripe_subscription = v_sub AND s.synced_at > v_fetched
     FOR UPDATE;
  IF FOUND THEN
    applied := false;
    RETURN;
  END IF;

  IF v_meta IS NOT NULL THEN
    PERFORM tollgate._link_stripe_customer(v_stripe, v_meta, 'metadata', NULL);
  END IF;
  v_owner := tollgate._stripe_owner(v_stripe);

  INSERT INTO tollgate.subscriptions AS s (
    stripe_subscription, stripe_customer, customer, status, price_ids, product_ids,
    current_period_start, current_period_end, cancel_at_period_end, stripe_created, synced_at)
  VALUES (v_sub, v_stripe, v_owner, v_status, v_prices, v_products, v_start, v_end, v_cancel, v_created, v_fetched)
  ON CONFLICT ON CONSTRAINT subscriptions_pkey DO UPDATE
    SET stripe_customer = EXCLUDED.stripe_customer,
        customer = EXCLUDED.customer,
        status = EXCLUDED.status,
        price_ids = EXCLUDED.price_ids,
        product_ids = EXCLUDED.product_ids,
        current_period_start = EXCLUDED.current_period_start,
        current_period_end = EXCLUDED.current_period_end,
        cancel_at_period_end = EXCLUDED.cancel_at_period_end,
        stripe_created = EXCLUDED.stripe_created,
        synced_at = EXCLUDED.synced_at
  WHERE s.synced_at <= EXCLUDED.synced_at
  RETURNING s.customer, s.plan INTO customer, plan;
  applied := FOUND;
  IF NOT applied THEN
    SELECT s.customer, s.plan INTO customer, plan
      FROM tollgate.subscriptions s WHERE s.stripe_subscription = v_sub;
  END IF;
END
$_$;


--
-- Name: FUNCTION sync_subscription(stripe_subscription text, stripe_customer text, status text, price_ids text[], product_ids text[], current_period_start timestamp with time zone, current_period_end timestamp with time zone, cancel_at_period_end boolean, stripe_created timestamp with time zone, fetched_at timestamp with time zone, tollgate_customer text, OUT customer text, OUT plan text, OUT applied boolean); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.sync_subscription(stripe_subscription text, stripe_customer text, status text, price_ids text[], product_ids text[], current_period_start timestamp with time zone, current_period_end timestamp with time zone, cancel_at_period_end boolean, stripe_created timestamp with time zone, fetched_at timestamp with time zone, tollgate_customer text, OUT customer text, OUT plan text, OUT applied boolean) IS 'Sidecar: stores a subscription as just fetched from Stripe (Subscription.id, .customer, .status, items.data[].price.id and .product, current_period_start/end from the subscription or, on API 2025-03-31 and later, its items; NULL when Stripe gives none, .cancel_at_period_end, .created). fetched_at is when the fetch started: a fetch older than the stored one changes nothing (applied = false). tollgate_customer is the Stripe customer''s metadata.tollgate_customer, recorded as a link. The plan comes from the prices and products, the customer from the links (set_customer first, then metadata, then Checkout); the customer''s plan is recomputed. Returns the customer (NULL = nobody yet: linked when a mapping appears) and plan (NULL = no plan names these prices). Errors: TG422 for malformed ids, NULL fetched_at, or a timestamp at the epoch.';


--
-- Name: unmapped_subscriptions(); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.unmapped_subscriptions() RETURNS TABLE(stripe_subscription text, stripe_customer text, customer text, status text, price_ids text[], product_ids text[], problem text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $$
  SELECT s.stripe_subscription, s.stripe_customer, s.customer, s.status, s.price_ids, s.product_ids,
         CASE WHEN s.customer IS NULL AND s.plan IS NULL THEN 'no customer, no plan'
              WHEN s.customer IS NULL THEN 'no customer'
              ELSE 'no plan' END
    FROM tollgate.subscriptions s
   WHERE (s.customer IS NULL OR s.plan IS NULL)
     AND s.status NOT IN ('canceled', 'incomplete_expired')
   ORDER BY s.stripe_subscription
$$;


--
-- Name: FUNCTION unmapped_subscriptions(); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.unmapped_subscriptions() IS 'Stripe subscriptions that give nobody a plan because tollgate knows no customer for their Stripe customer (link it: set_customer, metadata.tollgate_customer or Checkout) or no plan names their prices or products (add them to a plan); ended ones (canceled, incomplete_expired) are left out. problem says which: no customer, no plan, or no customer, no plan.';


--
-- Name: usage(text); Type: FUNCTION; Schema: tollgate; Owner: -
--

CREATE FUNCTION tollgate.usage(customer text) RETURNS SETOF tollgate.verdict
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'tollgate', 'pg_temp'
    AS $_$
BEGIN
  PERFORM tollgate._check_text('customer', $1, 255);
  RETURN QUERY
    SELECT v.*
      FROM tollgate.features f
     CROSS JOIN LATERAL tollgate._check($1, f.feature, 1, now()) v
     ORDER BY f.feature;
END
$_$;


--
-- Name: FUNCTION usage(customer text); Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON FUNCTION tollgate.usage(customer text) IS 'One verdict per feature for customer, changing nothing: "80 of 100 API calls used" displays. allowed says whether one more unit would be allowed. Errors: TG422 invalid customer.';


--
-- Name: schema_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_version (
    version integer NOT NULL
);


--
-- Name: code_package; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.code_package (
    singleton boolean DEFAULT true NOT NULL,
    sha256 text NOT NULL,
    installed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT code_package_sha256_check CHECK ((sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT code_package_singleton_check CHECK (singleton)
);


--
-- Name: TABLE code_package; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON TABLE tollgate.code_package IS 'The code package (sql/) installed last: the sha256 of its rendered text as sent to the server, and when.';


--
-- Name: config_state; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.config_state (
    singleton boolean DEFAULT true NOT NULL,
    version bigint NOT NULL,
    CONSTRAINT config_state_singleton_check CHECK (singleton)
);


--
-- Name: plan_changes; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.plan_changes (
    id bigint NOT NULL,
    customer text NOT NULL,
    from_plan text NOT NULL,
    to_plan text NOT NULL,
    kind text NOT NULL,
    email_id bigint,
    event_id bigint,
    feature text,
    prompted_at timestamp with time zone,
    changed_at timestamp with time zone DEFAULT now() NOT NULL,
    xact xid8 DEFAULT pg_current_xact_id() NOT NULL,
    CONSTRAINT plan_changes_check CHECK (((feature IS NULL) = (prompted_at IS NULL))),
    CONSTRAINT plan_changes_check1 CHECK (((kind = 'conversion'::text) OR (feature IS NULL))),
    CONSTRAINT plan_changes_kind_check CHECK ((kind = ANY (ARRAY['conversion'::text, 'churn'::text, 'change'::text])))
);


--
-- Name: TABLE plan_changes; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON TABLE tollgate.plan_changes IS 'Every change of a customer''s plan, written by a trigger in the transaction that changed it.';


--
-- Name: COLUMN plan_changes.from_plan; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plan_changes.from_plan IS 'The plan before (the default plan''s name when it was the default plan).';


--
-- Name: COLUMN plan_changes.to_plan; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plan_changes.to_plan IS 'The plan after (the default plan''s name when it is the default plan).';


--
-- Name: COLUMN plan_changes.kind; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plan_changes.kind IS 'conversion: from the default plan to an entitled paid plan; churn: back to the default plan; change: paid to paid.';


--
-- Name: COLUMN plan_changes.email_id; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plan_changes.email_id IS 'The upgrade prompt (a sent email) this conversion is attributed to; NULL = organic, or the email was pruned.';


--
-- Name: COLUMN plan_changes.event_id; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plan_changes.event_id IS 'The limit_reached event of that prompt; NULL = organic, or the event was pruned.';


--
-- Name: COLUMN plan_changes.feature; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plan_changes.feature IS 'The feature of that prompt; NULL = organic.';


--
-- Name: COLUMN plan_changes.prompted_at; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plan_changes.prompted_at IS 'When that prompt was sent (emails.sent_at); NULL = organic.';


--
-- Name: COLUMN plan_changes.changed_at; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plan_changes.changed_at IS 'When the plan changed (the start of the transaction that changed it).';


--
-- Name: COLUMN plan_changes.xact; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plan_changes.xact IS 'The transaction that wrote this row.';


--
-- Name: conversions; Type: VIEW; Schema: tollgate; Owner: -
--

CREATE VIEW tollgate.conversions AS
 SELECT plan_changes.id,
    plan_changes.customer,
    plan_changes.from_plan,
    plan_changes.to_plan,
    plan_changes.changed_at AS converted_at,
    plan_changes.email_id,
    plan_changes.event_id,
    plan_changes.feature,
    plan_changes.prompted_at
   FROM tollgate.plan_changes
  WHERE (plan_changes.kind = 'conversion'::text);


--
-- Name: VIEW conversions; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON VIEW tollgate.conversions IS 'Free -> paid conversions; feature and prompted_at name the upgrade prompt each is attributed to (NULL = organic).';


--
-- Name: customers; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.customers (
    customer text NOT NULL,
    email text,
    stripe_customer text,
    plan text,
    period_start timestamp with time zone,
    period_end timestamp with time zone,
    plan_epoch bigint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    email_opt_out boolean DEFAULT false NOT NULL,
    CONSTRAINT customers_customer_check CHECK ((customer <> ''::text))
);


--
-- Name: COLUMN customers.customer; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.customers.customer IS 'The app''s own customer key (a user or account id, as text).';


--
-- Name: COLUMN customers.stripe_customer; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.customers.stripe_customer IS 'Stripe Customer.id (cus_...) of this customer.';


--
-- Name: COLUMN customers.plan; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.customers.plan IS 'The entitled plan from the customer''s subscriptions; NULL = the default plan. Kept by tollgate._refresh_customer.';


--
-- Name: COLUMN customers.period_start; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.customers.period_start IS 'Stripe current_period_start of the subscription that gives the plan (billing period).';


--
-- Name: COLUMN customers.period_end; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.customers.period_end IS 'Stripe current_period_end of the subscription that gives the plan (billing period).';


--
-- Name: COLUMN customers.plan_epoch; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.customers.plan_epoch IS 'Counts changes of plan and billing period; usage rows copied their plan at one epoch.';


--
-- Name: COLUMN customers.created_at; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.customers.created_at IS 'Sign-up: the anchor of <N>d / <N>h windows and of the free billing month.';


--
-- Name: COLUMN customers.email_opt_out; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.customers.email_opt_out IS 'The customer asked for no upgrade prompts (tollgate.set_email_opt_out). Checked when an email is collected and again when it is claimed for sending.';


--
-- Name: emails; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.emails (
    id bigint NOT NULL,
    event_id bigint NOT NULL,
    customer text NOT NULL,
    feature text NOT NULL,
    period_start timestamp with time zone NOT NULL,
    template text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    claimed_by text,
    claimed_at timestamp with time zone,
    handed_off_at timestamp with time zone,
    provider text,
    to_email text,
    sender text,
    subject text,
    body_text text,
    body_html text,
    sent_at timestamp with time zone,
    provider_id text,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT emails_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'sending'::text, 'sent'::text, 'failed'::text, 'dead'::text, 'skipped'::text])))
);


--
-- Name: TABLE emails; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON TABLE tollgate.emails IS 'The outbox of upgrade prompts: one row per customer, feature and window whose limit was reached.';


--
-- Name: COLUMN emails.status; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.emails.status IS 'pending: to send; sending: claimed by a worker (claimed_by), reclaimed when that worker is gone or its claim is stale; sent; failed: will be retried at next_attempt_at; dead: given up after max attempts, a permanent provider error or an SMTP hand-off whose outcome is unknown (last_error says which); skipped: no email address or opted out.';


--
-- Name: COLUMN emails.attempts; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.emails.attempts IS 'How many times the row was claimed; each claim is one attempt.';


--
-- Name: COLUMN emails.claimed_by; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.emails.claimed_by IS 'The worker of the current or last claim. A live worker holds a session advisory lock named after it (tollgate.outbox_register), so a crashed worker''s claims are taken over at once.';


--
-- Name: COLUMN emails.handed_off_at; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.emails.handed_off_at IS 'Set when a worker starts handing the email to the provider and cleared when the attempt ends in a retryable failure: a row claimed again while it is set was interrupted mid-send, outcome unknown.';


--
-- Name: COLUMN emails.provider; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.emails.provider IS 'The provider of the last hand-off: resend, smtp or log.';


--
-- Name: COLUMN emails.provider_id; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.emails.provider_id IS 'The provider''s message id (Resend email id, SMTP Message-ID).';


--
-- Name: COLUMN emails.last_error; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.emails.last_error IS 'Why the last attempt failed, or why the row was skipped; the provider''s message is kept.';


--
-- Name: emails_id_seq; Type: SEQUENCE; Schema: tollgate; Owner: -
--

ALTER TABLE tollgate.emails ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tollgate.emails_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: events; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.events (
    id bigint NOT NULL,
    kind text NOT NULL,
    customer text NOT NULL,
    feature text NOT NULL,
    plan text NOT NULL,
    used bigint NOT NULL,
    quota bigint,
    threshold integer NOT NULL,
    period_start timestamp with time zone NOT NULL,
    period_end timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    processed_at timestamp with time zone,
    CONSTRAINT events_kind_check CHECK ((kind = ANY (ARRAY['threshold'::text, 'limit_reached'::text])))
);


--
-- Name: COLUMN events.threshold; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.events.threshold IS 'The notify_at percent crossed; 100 for limit_reached.';


--
-- Name: COLUMN events.processed_at; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.events.processed_at IS 'When tollgate.outbox_collect looked at this event; NULL = not yet.';


--
-- Name: events_id_seq; Type: SEQUENCE; Schema: tollgate; Owner: -
--

ALTER TABLE tollgate.events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tollgate.events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: features; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.features (
    feature text NOT NULL,
    period text NOT NULL,
    period_unit text NOT NULL,
    period_length integer DEFAULT 1 NOT NULL,
    enforcement text DEFAULT 'hard'::text NOT NULL,
    notify_at integer[] DEFAULT '{100}'::integer[] NOT NULL,
    message text,
    upgrade_prompt text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT features_enforcement_check CHECK ((enforcement = ANY (ARRAY['hard'::text, 'soft'::text]))),
    CONSTRAINT features_feature_check CHECK ((feature ~ '^[a-z][a-z0-9_]{0,62}$'::text)),
    CONSTRAINT features_period_length_check CHECK ((period_length > 0)),
    CONSTRAINT features_period_unit_check CHECK ((period_unit = ANY (ARRAY['month'::text, 'billing'::text, 'hour'::text, 'day'::text, 'rolling'::text, 'lifetime'::text])))
);


--
-- Name: COLUMN features.notify_at; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.features.notify_at IS 'Percents of the quota whose first crossing in a window writes a threshold event.';


--
-- Name: COLUMN features.upgrade_prompt; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.features.upgrade_prompt IS 'Email template of the upgrade prompt sent on this feature''s events; NULL = no email.';


--
-- Name: limits; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.limits (
    plan text NOT NULL,
    feature text NOT NULL,
    quota bigint,
    CONSTRAINT limits_quota_check CHECK ((quota >= 0))
);


--
-- Name: TABLE limits; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON TABLE tollgate.limits IS 'What each plan may use of each feature per window. quota NULL = unlimited (or "on" for a boolean feature), 0 = not included ("off"). A plan without a row here does not get the feature.';


--
-- Name: plan_changes_id_seq; Type: SEQUENCE; Schema: tollgate; Owner: -
--

ALTER TABLE tollgate.plan_changes ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tollgate.plan_changes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: plans; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.plans (
    plan text NOT NULL,
    is_default boolean DEFAULT false NOT NULL,
    stripe_prices text[] DEFAULT '{}'::text[] NOT NULL,
    stripe_products text[] DEFAULT '{}'::text[] NOT NULL,
    rank integer DEFAULT 0 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT plans_plan_check CHECK ((plan ~ '^[a-z][a-z0-9_]{0,62}$'::text))
);


--
-- Name: COLUMN plans.is_default; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plans.is_default IS 'The plan of every customer without an entitled subscription (the free plan).';


--
-- Name: COLUMN plans.stripe_prices; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plans.stripe_prices IS 'Stripe Price ids (Price.id, price_...) whose subscriptions mean this plan.';


--
-- Name: COLUMN plans.stripe_products; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plans.stripe_products IS 'Stripe Product ids (Product.id, prod_...) whose subscriptions mean this plan.';


--
-- Name: COLUMN plans.rank; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.plans.rank IS 'When a customer has several entitled subscriptions, the plan with the highest rank wins.';


--
-- Name: routes; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.routes (
    method text NOT NULL,
    pattern text NOT NULL,
    feature text NOT NULL,
    amount bigint DEFAULT 1 NOT NULL,
    CONSTRAINT routes_amount_check CHECK ((amount > 0))
);


--
-- Name: settings; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.settings (
    key text NOT NULL,
    value text NOT NULL
);


--
-- Name: stripe_events; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.stripe_events (
    id text NOT NULL,
    type text NOT NULL,
    api_version text,
    object_id text,
    stripe_created timestamp with time zone,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: COLUMN stripe_events.id; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.stripe_events.id IS 'Stripe Event.id (evt_...).';


--
-- Name: COLUMN stripe_events.type; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.stripe_events.type IS 'Stripe Event.type (customer.subscription.updated, ...).';


--
-- Name: COLUMN stripe_events.api_version; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.stripe_events.api_version IS 'Stripe Event.api_version the event was rendered with.';


--
-- Name: COLUMN stripe_events.object_id; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.stripe_events.object_id IS 'Stripe Event.data.object.id (the subscription, customer, session or invoice).';


--
-- Name: COLUMN stripe_events.stripe_created; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.stripe_events.stripe_created IS 'Stripe Event.created.';


--
-- Name: stripe_links; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.stripe_links (
    stripe_customer text NOT NULL,
    customer text NOT NULL,
    source text NOT NULL,
    source_id text,
    linked_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT stripe_links_customer_check CHECK ((customer <> ''::text)),
    CONSTRAINT stripe_links_source_check CHECK ((source = ANY (ARRAY['metadata'::text, 'checkout'::text])))
);


--
-- Name: TABLE stripe_links; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON TABLE tollgate.stripe_links IS 'Stripe customers linked by the sidecar: from Customer.metadata.tollgate_customer or a Checkout Session''s client_reference_id.';


--
-- Name: COLUMN stripe_links.stripe_customer; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.stripe_links.stripe_customer IS 'Stripe Customer.id (cus_...).';


--
-- Name: COLUMN stripe_links.customer; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.stripe_links.customer IS 'Stripe Customer.metadata.tollgate_customer, or Checkout Session.client_reference_id.';


--
-- Name: COLUMN stripe_links.source; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.stripe_links.source IS 'metadata: Customer.metadata.tollgate_customer; checkout: Checkout Session.client_reference_id (metadata wins).';


--
-- Name: COLUMN stripe_links.source_id; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.stripe_links.source_id IS 'The Checkout Session.id (cs_...) a checkout link came from.';


--
-- Name: subscriptions; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.subscriptions (
    stripe_subscription text NOT NULL,
    stripe_customer text NOT NULL,
    customer text,
    status text NOT NULL,
    price_ids text[] DEFAULT '{}'::text[] NOT NULL,
    product_ids text[] DEFAULT '{}'::text[] NOT NULL,
    plan text,
    current_period_start timestamp with time zone,
    current_period_end timestamp with time zone,
    cancel_at_period_end boolean DEFAULT false NOT NULL,
    stripe_created timestamp with time zone,
    synced_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: COLUMN subscriptions.stripe_subscription; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.stripe_subscription IS 'Stripe Subscription.id (sub_...).';


--
-- Name: COLUMN subscriptions.stripe_customer; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.stripe_customer IS 'Stripe Subscription.customer (cus_...).';


--
-- Name: COLUMN subscriptions.customer; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.customer IS 'The tollgate customer this subscription belongs to; NULL until a mapping is known.';


--
-- Name: COLUMN subscriptions.status; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.status IS 'Stripe Subscription.status (active, trialing, past_due, canceled, unpaid, incomplete, incomplete_expired, paused).';


--
-- Name: COLUMN subscriptions.price_ids; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.price_ids IS 'Stripe Subscription.items.data[].price.id.';


--
-- Name: COLUMN subscriptions.product_ids; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.product_ids IS 'Stripe Subscription.items.data[].price.product.';


--
-- Name: COLUMN subscriptions.plan; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.plan IS 'The tollgate plan these prices or products map to; NULL = no plan names them.';


--
-- Name: COLUMN subscriptions.current_period_start; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.current_period_start IS 'Stripe Subscription.current_period_start, or items.data[].current_period_start on API 2025-03-31 and later.';


--
-- Name: COLUMN subscriptions.current_period_end; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.current_period_end IS 'Stripe Subscription.current_period_end, or items.data[].current_period_end on API 2025-03-31 and later.';


--
-- Name: COLUMN subscriptions.cancel_at_period_end; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.cancel_at_period_end IS 'Stripe Subscription.cancel_at_period_end.';


--
-- Name: COLUMN subscriptions.stripe_created; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.subscriptions.stripe_created IS 'Stripe Subscription.created.';


--
-- Name: sync_runs; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.sync_runs (
    id bigint NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    subscriptions integer DEFAULT 0 NOT NULL,
    error text
);


--
-- Name: COLUMN sync_runs.finished_at; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.sync_runs.finished_at IS 'NULL while running, or when the replica running it died.';


--
-- Name: COLUMN sync_runs.subscriptions; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.sync_runs.subscriptions IS 'Stripe subscriptions listed (status=all) and upserted by the run.';


--
-- Name: COLUMN sync_runs.error; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON COLUMN tollgate.sync_runs.error IS 'Why the run stopped early; NULL = it listed every subscription.';


--
-- Name: sync_runs_id_seq; Type: SEQUENCE; Schema: tollgate; Owner: -
--

ALTER TABLE tollgate.sync_runs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tollgate.sync_runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: usage_shards; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.usage_shards (
    customer text NOT NULL,
    feature text NOT NULL,
    window_start timestamp with time zone NOT NULL,
    shard integer NOT NULL,
    used bigint DEFAULT 0 NOT NULL
)
WITH (fillfactor='70');


--
-- Name: TABLE usage_shards; Type: COMMENT; Schema: tollgate; Owner: -
--

COMMENT ON TABLE tollgate.usage_shards IS 'Counts of unlimited features per backend shard; a window''s usage is usage.used (or usage_windows.used) plus its shards.';


--
-- Name: usage_windows; Type: TABLE; Schema: tollgate; Owner: -
--

CREATE TABLE tollgate.usage_windows (
    customer text NOT NULL,
    feature text NOT NULL,
    window_start timestamp with time zone NOT NULL,
    window_end timestamp with time zone,
    used bigint NOT NULL,
    plan text
);


--
-- Data for Name: schema_version; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.schema_version (version) FROM stdin;
6
\.


--
-- Data for Name: code_package; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.code_package (singleton, sha256, installed_at) FROM stdin;
t	4ff3d61ca8a015ca5b995cbda9d1839c0113fb1b7e5f159879e842eee552c39b	2026-12-03 04:35:31.279083+00
\.


--
-- Data for Name: config_state; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.config_state (singleton, version) FROM stdin;
t	1
\.


--
-- Data for Name: customers; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.customers (customer, email, stripe_customer, plan, period_start, period_end, plan_epoch, created_at, updated_at, email_opt_out) FROM stdin;
\.


--
-- Data for Name: emails; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.emails (id, event_id, customer, feature, period_start, template, status, attempts, next_attempt_at, claimed_by, claimed_at, handed_off_at, provider, to_email, sender, subject, body_text, body_html, sent_at, provider_id, last_error, created_at) FROM stdin;
\.


--
-- Data for Name: events; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.events (id, kind, customer, feature, plan, used, quota, threshold, period_start, period_end, created_at, processed_at) FROM stdin;
\.


--
-- Data for Name: features; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.features (feature, period, period_unit, period_length, enforcement, notify_at, message, upgrade_prompt, updated_at) FROM stdin;
\.


--
-- Data for Name: limits; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.limits (plan, feature, quota) FROM stdin;
\.


--
-- Data for Name: plan_changes; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.plan_changes (id, customer, from_plan, to_plan, kind, email_id, event_id, feature, prompted_at, changed_at, xact) FROM stdin;
\.


--
-- Data for Name: plans; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.plans (plan, is_default, stripe_prices, stripe_products, rank, updated_at) FROM stdin;
\.


--
-- Data for Name: routes; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.routes (method, pattern, feature, amount) FROM stdin;
\.


--
-- Data for Name: settings; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.settings (key, value) FROM stdin;
\.


--
-- Data for Name: stripe_events; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.stripe_events (id, type, api_version, object_id, stripe_created, received_at) FROM stdin;
\.


--
-- Data for Name: stripe_links; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.stripe_links (stripe_customer, customer, source, source_id, linked_at) FROM stdin;
\.


--
-- Data for Name: subscriptions; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.subscriptions (stripe_subscription, stripe_customer, customer, status, price_ids, product_ids, plan, current_period_start, current_period_end, cancel_at_period_end, stripe_created, synced_at) FROM stdin;
\.


--
-- Data for Name: sync_runs; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.sync_runs (id, started_at, finished_at, subscriptions, error) FROM stdin;
\.


--
-- Data for Name: usage; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.usage (customer, feature, window_start, window_end, used, limit_hit, plan, quota, soft, next_mark, config_version, plan_epoch) FROM stdin;
\.


--
-- Data for Name: usage_shards; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.usage_shards (customer, feature, window_start, shard, used) FROM stdin;
\.


--
-- Data for Name: usage_windows; Type: TABLE DATA; Schema: tollgate; Owner: -
--

COPY tollgate.usage_windows (customer, feature, window_start, window_end, used, plan) FROM stdin;
\.


--
-- Name: emails_id_seq; Type: SEQUENCE SET; Schema: tollgate; Owner: -
--

SELECT pg_catalog.setval('tollgate.emails_id_seq', 1, false);


--
-- Name: events_id_seq; Type: SEQUENCE SET; Schema: tollgate; Owner: -
--

SELECT pg_catalog.setval('tollgate.events_id_seq', 1, false);


--
-- Name: plan_changes_id_seq; Type: SEQUENCE SET; Schema: tollgate; Owner: -
--

SELECT pg_catalog.setval('tollgate.plan_changes_id_seq', 1, false);


--
-- Name: sync_runs_id_seq; Type: SEQUENCE SET; Schema: tollgate; Owner: -
--

SELECT pg_catalog.setval('tollgate.sync_runs_id_seq', 1, false);


--
-- Name: code_package code_package_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.code_package
    ADD CONSTRAINT code_package_pkey PRIMARY KEY (singleton);


--
-- Name: config_state config_state_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.config_state
    ADD CONSTRAINT config_state_pkey PRIMARY KEY (singleton);


--
-- Name: customers customers_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.customers
    ADD CONSTRAINT customers_pkey PRIMARY KEY (customer);


--
-- Name: customers customers_stripe_customer_key; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.customers
    ADD CONSTRAINT customers_stripe_customer_key UNIQUE (stripe_customer);


--
-- Name: emails emails_customer_feature_period_start_key; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.emails
    ADD CONSTRAINT emails_customer_feature_period_start_key UNIQUE (customer, feature, period_start);


--
-- Name: emails emails_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.emails
    ADD CONSTRAINT emails_pkey PRIMARY KEY (id);


--
-- Name: events events_customer_feature_period_start_kind_threshold_key; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.events
    ADD CONSTRAINT events_customer_feature_period_start_kind_threshold_key UNIQUE (customer, feature, period_start, kind, threshold);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);


--
-- Name: features features_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.features
    ADD CONSTRAINT features_pkey PRIMARY KEY (feature);


--
-- Name: limits limits_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.limits
    ADD CONSTRAINT limits_pkey PRIMARY KEY (plan, feature);


--
-- Name: plan_changes plan_changes_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.plan_changes
    ADD CONSTRAINT plan_changes_pkey PRIMARY KEY (id);


--
-- Name: plans plans_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.plans
    ADD CONSTRAINT plans_pkey PRIMARY KEY (plan);


--
-- Name: routes routes_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.routes
    ADD CONSTRAINT routes_pkey PRIMARY KEY (method, pattern);


--
-- Name: settings settings_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.settings
    ADD CONSTRAINT settings_pkey PRIMARY KEY (key);


--
-- Name: stripe_events stripe_events_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.stripe_events
    ADD CONSTRAINT stripe_events_pkey PRIMARY KEY (id);


--
-- Name: stripe_links stripe_links_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.stripe_links
    ADD CONSTRAINT stripe_links_pkey PRIMARY KEY (stripe_customer);


--
-- Name: subscriptions subscriptions_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.subscriptions
    ADD CONSTRAINT subscriptions_pkey PRIMARY KEY (stripe_subscription);


--
-- Name: sync_runs sync_runs_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.sync_runs
    ADD CONSTRAINT sync_runs_pkey PRIMARY KEY (id);


--
-- Name: usage usage_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.usage
    ADD CONSTRAINT usage_pkey PRIMARY KEY (customer, feature);


--
-- Name: usage_shards usage_shards_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.usage_shards
    ADD CONSTRAINT usage_shards_pkey PRIMARY KEY (customer, feature, window_start, shard);


--
-- Name: usage_windows usage_windows_pkey; Type: CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.usage_windows
    ADD CONSTRAINT usage_windows_pkey PRIMARY KEY (customer, feature, window_start);


--
-- Name: emails_customer_sent; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX emails_customer_sent ON tollgate.emails USING btree (customer, sent_at) WHERE (status = 'sent'::text);


--
-- Name: emails_due; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX emails_due ON tollgate.emails USING btree (next_attempt_at) WHERE (status = ANY (ARRAY['pending'::text, 'failed'::text, 'sending'::text]));


--
-- Name: emails_sent_at; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX emails_sent_at ON tollgate.emails USING btree (sent_at) WHERE (status = 'sent'::text);


--
-- Name: events_created_at; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX events_created_at ON tollgate.events USING btree (created_at);


--
-- Name: events_unprocessed; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX events_unprocessed ON tollgate.events USING btree (id) WHERE (processed_at IS NULL);


--
-- Name: plan_changes_changed_at; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX plan_changes_changed_at ON tollgate.plan_changes USING btree (changed_at);


--
-- Name: plan_changes_customer; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX plan_changes_customer ON tollgate.plan_changes USING btree (customer, changed_at);


--
-- Name: plans_one_default; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE UNIQUE INDEX plans_one_default ON tollgate.plans USING btree ((true)) WHERE is_default;


--
-- Name: stripe_events_received_at; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX stripe_events_received_at ON tollgate.stripe_events USING btree (received_at);


--
-- Name: stripe_links_customer; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX stripe_links_customer ON tollgate.stripe_links USING btree (customer);


--
-- Name: subscriptions_customer; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX subscriptions_customer ON tollgate.subscriptions USING btree (customer);


--
-- Name: subscriptions_stripe_customer; Type: INDEX; Schema: tollgate; Owner: -
--

CREATE INDEX subscriptions_stripe_customer ON tollgate.subscriptions USING btree (stripe_customer);


--
-- Name: features bump_config_version; Type: TRIGGER; Schema: tollgate; Owner: -
--

CREATE TRIGGER bump_config_version AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON tollgate.features FOR EACH STATEMENT EXECUTE FUNCTION tollgate._bump_config_version();


--
-- Name: limits bump_config_version; Type: TRIGGER; Schema: tollgate; Owner: -
--

CREATE TRIGGER bump_config_version AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON tollgate.limits FOR EACH STATEMENT EXECUTE FUNCTION tollgate._bump_config_version();


--
-- Name: plans bump_config_version; Type: TRIGGER; Schema: tollgate; Owner: -
--

CREATE TRIGGER bump_config_version AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON tollgate.plans FOR EACH STATEMENT EXECUTE FUNCTION tollgate._bump_config_version();


--
-- Name: customers customers_plan_changed; Type: TRIGGER; Schema: tollgate; Owner: -
--

CREATE TRIGGER customers_plan_changed AFTER UPDATE OF plan ON tollgate.customers FOR EACH ROW WHEN ((old.plan IS DISTINCT FROM new.plan)) EXECUTE FUNCTION tollgate._customers_plan_changed();


--
-- Name: subscriptions subscriptions_after; Type: TRIGGER; Schema: tollgate; Owner: -
--

CREATE TRIGGER subscriptions_after AFTER INSERT OR DELETE OR UPDATE ON tollgate.subscriptions FOR EACH ROW EXECUTE FUNCTION tollgate._subscriptions_after();


--
-- Name: subscriptions subscriptions_before; Type: TRIGGER; Schema: tollgate; Owner: -
--

CREATE TRIGGER subscriptions_before BEFORE INSERT OR UPDATE ON tollgate.subscriptions FOR EACH ROW EXECUTE FUNCTION tollgate._subscriptions_before();


--
-- Name: customers customers_plan_fkey; Type: FK CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.customers
    ADD CONSTRAINT customers_plan_fkey FOREIGN KEY (plan) REFERENCES tollgate.plans(plan) ON DELETE SET NULL;


--
-- Name: emails emails_event_id_fkey; Type: FK CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.emails
    ADD CONSTRAINT emails_event_id_fkey FOREIGN KEY (event_id) REFERENCES tollgate.events(id) ON DELETE CASCADE;


--
-- Name: limits limits_feature_fkey; Type: FK CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.limits
    ADD CONSTRAINT limits_feature_fkey FOREIGN KEY (feature) REFERENCES tollgate.features(feature) ON DELETE CASCADE;


--
-- Name: limits limits_plan_fkey; Type: FK CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.limits
    ADD CONSTRAINT limits_plan_fkey FOREIGN KEY (plan) REFERENCES tollgate.plans(plan) ON DELETE CASCADE;


--
-- Name: plan_changes plan_changes_email_id_fkey; Type: FK CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.plan_changes
    ADD CONSTRAINT plan_changes_email_id_fkey FOREIGN KEY (email_id) REFERENCES tollgate.emails(id) ON DELETE SET NULL;


--
-- Name: plan_changes plan_changes_event_id_fkey; Type: FK CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.plan_changes
    ADD CONSTRAINT plan_changes_event_id_fkey FOREIGN KEY (event_id) REFERENCES tollgate.events(id) ON DELETE SET NULL;


--
-- Name: routes routes_feature_fkey; Type: FK CONSTRAINT; Schema: tollgate; Owner: -
--

ALTER TABLE ONLY tollgate.routes
    ADD CONSTRAINT routes_feature_fkey FOREIGN KEY (feature) REFERENCES tollgate.features(feature) ON DELETE CASCADE;


--
-- Name: SCHEMA tollgate; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA tollgate TO tollgate_app;
GRANT USAGE ON SCHEMA tollgate TO tollgate_sidecar;


--
-- Name: FUNCTION _attribution_window(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._attribution_window() FROM PUBLIC;


--
-- Name: FUNCTION _billing_window(p_at timestamp with time zone, p_anchor timestamp with time zone, p_period_start timestamp with time zone, p_period_end timestamp with time zone, OUT window_start timestamp with time zone, OUT window_end timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._billing_window(p_at timestamp with time zone, p_anchor timestamp with time zone, p_period_start timestamp with time zone, p_period_end timestamp with time zone, OUT window_start timestamp with time zone, OUT window_end timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _block(r tollgate.usage, p_amount bigint, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._block(r tollgate.usage, p_amount bigint, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _bump_config_version(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._bump_config_version() FROM PUBLIC;


--
-- Name: FUNCTION _check(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._check(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _check_args(p_customer text, p_feature text, p_amount bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._check_args(p_customer text, p_feature text, p_amount bigint) FROM PUBLIC;


--
-- Name: FUNCTION _check_room(p_used bigint, p_amount bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._check_room(p_used bigint, p_amount bigint) FROM PUBLIC;


--
-- Name: FUNCTION _check_text(p_what text, p_value text, p_max integer); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._check_text(p_what text, p_value text, p_max integer) FROM PUBLIC;


--
-- Name: FUNCTION _close_window(r tollgate.usage); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._close_window(r tollgate.usage) FROM PUBLIC;


--
-- Name: FUNCTION _config(p_customer text, p_feature text, OUT period_unit text, OUT period_length integer, OUT soft boolean, OUT known boolean, OUT anchor timestamp with time zone, OUT period_start timestamp with time zone, OUT period_end timestamp with time zone, OUT plan text, OUT quota bigint, OUT config_version bigint, OUT plan_epoch bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._config(p_customer text, p_feature text, OUT period_unit text, OUT period_length integer, OUT soft boolean, OUT known boolean, OUT anchor timestamp with time zone, OUT period_start timestamp with time zone, OUT period_end timestamp with time zone, OUT plan text, OUT quota bigint, OUT config_version bigint, OUT plan_epoch bigint) FROM PUBLIC;


--
-- Name: FUNCTION _consume(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._consume(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _consume_locked(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._consume_locked(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _consume_rolling(r tollgate.usage, p_amount bigint, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._consume_rolling(r tollgate.usage, p_amount bigint, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _crossed(p_customer text, p_feature text, p_plan text, p_old bigint, p_new bigint, p_quota bigint, p_soft boolean, p_start timestamp with time zone, p_end timestamp with time zone, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._crossed(p_customer text, p_feature text, p_plan text, p_old bigint, p_new bigint, p_quota bigint, p_soft boolean, p_start timestamp with time zone, p_end timestamp with time zone, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _customers_plan_changed(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._customers_plan_changed() FROM PUBLIC;


--
-- Name: FUNCTION _emit(p_kind text, p_customer text, p_feature text, p_plan text, p_used bigint, p_quota bigint, p_threshold integer, p_period_start timestamp with time zone, p_period_end timestamp with time zone, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._emit(p_kind text, p_customer text, p_feature text, p_plan text, p_used bigint, p_quota bigint, p_threshold integer, p_period_start timestamp with time zone, p_period_end timestamp with time zone, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _fold_shards(p_customer text, p_feature text, p_start timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._fold_shards(p_customer text, p_feature text, p_start timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _link_stripe_customer(p_stripe_customer text, p_customer text, p_source text, p_source_id text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._link_stripe_customer(p_stripe_customer text, p_customer text, p_source text, p_source_id text) FROM PUBLIC;


--
-- Name: FUNCTION _next_mark(p_feature text, p_used bigint, p_quota bigint, p_soft boolean); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._next_mark(p_feature text, p_used bigint, p_quota bigint, p_soft boolean) FROM PUBLIC;


--
-- Name: FUNCTION _note(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._note(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _outbox_worker_gone(p_worker text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._outbox_worker_gone(p_worker text) FROM PUBLIC;


--
-- Name: FUNCTION _plan_for(p_prices text[], p_products text[]); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._plan_for(p_prices text[], p_products text[]) FROM PUBLIC;


--
-- Name: FUNCTION _prompts(p_amount bigint, p_quota bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._prompts(p_amount bigint, p_quota bigint) FROM PUBLIC;


--
-- Name: FUNCTION _raise_quota_exceeded(v tollgate.verdict, p_amount bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._raise_quota_exceeded(v tollgate.verdict, p_amount bigint) FROM PUBLIC;


--
-- Name: FUNCTION _refresh_customer(p_customer text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._refresh_customer(p_customer text) FROM PUBLIC;


--
-- Name: FUNCTION _refund(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._refund(p_customer text, p_feature text, p_amount bigint, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _refund_rolling(r tollgate.usage, p_amount bigint, p_at timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._refund_rolling(r tollgate.usage, p_amount bigint, p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _rolling(p_customer text, p_feature text, p_at timestamp with time zone, OUT used bigint, OUT resets_at timestamp with time zone, OUT bucket timestamp with time zone, OUT since timestamp with time zone, OUT slot timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._rolling(p_customer text, p_feature text, p_at timestamp with time zone, OUT used bigint, OUT resets_at timestamp with time zone, OUT bucket timestamp with time zone, OUT since timestamp with time zone, OUT slot timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _row_gate(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._row_gate() FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate._row_gate() TO tollgate_app;


--
-- Name: FUNCTION _save_usage(r tollgate.usage); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._save_usage(r tollgate.usage) FROM PUBLIC;


--
-- Name: FUNCTION _shard(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._shard() FROM PUBLIC;


--
-- Name: FUNCTION _shard_total(p_customer text, p_feature text, p_start timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._shard_total(p_customer text, p_feature text, p_start timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _stripe_owner(p_stripe_customer text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._stripe_owner(p_stripe_customer text) FROM PUBLIC;


--
-- Name: FUNCTION _subscriptions_after(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._subscriptions_after() FROM PUBLIC;


--
-- Name: FUNCTION _subscriptions_before(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._subscriptions_before() FROM PUBLIC;


--
-- Name: FUNCTION _total(r tollgate.usage); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._total(r tollgate.usage) FROM PUBLIC;


--
-- Name: FUNCTION _usage_row(p_customer text, p_feature text, p_at timestamp with time zone, p_register boolean); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._usage_row(p_customer text, p_feature text, p_at timestamp with time zone, p_register boolean) FROM PUBLIC;


--
-- Name: FUNCTION _verdict(p_allowed boolean, p_customer text, p_feature text, p_plan text, p_used bigint, p_quota bigint, p_end timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._verdict(p_allowed boolean, p_customer text, p_feature text, p_plan text, p_used bigint, p_quota bigint, p_end timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _window_end(p_unit text, p_length integer, p_at timestamp with time zone, p_anchor timestamp with time zone, p_period_start timestamp with time zone, p_period_end timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._window_end(p_unit text, p_length integer, p_at timestamp with time zone, p_anchor timestamp with time zone, p_period_start timestamp with time zone, p_period_end timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION _window_seconds(p_unit text, p_length integer); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._window_seconds(p_unit text, p_length integer) FROM PUBLIC;


--
-- Name: FUNCTION _window_start(p_unit text, p_length integer, p_at timestamp with time zone, p_anchor timestamp with time zone, p_period_start timestamp with time zone, p_period_end timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate._window_start(p_unit text, p_length integer, p_at timestamp with time zone, p_anchor timestamp with time zone, p_period_start timestamp with time zone, p_period_end timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION attach_row_gate(tbl regclass, customer_column name, feature text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.attach_row_gate(tbl regclass, customer_column name, feature text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.attach_row_gate(tbl regclass, customer_column name, feature text) TO tollgate_app;


--
-- Name: FUNCTION "check"(customer text, feature text, amount bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate."check"(customer text, feature text, amount bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate."check"(customer text, feature text, amount bigint) TO tollgate_app;


--
-- Name: FUNCTION consume(customer text, feature text, amount bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.consume(customer text, feature text, amount bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.consume(customer text, feature text, amount bigint) TO tollgate_app;


--
-- Name: FUNCTION define_feature(feature text, period text, enforcement text, notify_at integer[], message text, upgrade_prompt text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.define_feature(feature text, period text, enforcement text, notify_at integer[], message text, upgrade_prompt text) FROM PUBLIC;


--
-- Name: FUNCTION define_plan(plan text, is_default boolean, stripe_prices text[], rank integer, stripe_products text[]); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.define_plan(plan text, is_default boolean, stripe_prices text[], rank integer, stripe_products text[]) FROM PUBLIC;


--
-- Name: FUNCTION define_route(method text, pattern text, feature text, amount bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.define_route(method text, pattern text, feature text, amount bigint) FROM PUBLIC;


--
-- Name: FUNCTION detach_row_gate(tbl regclass, feature text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.detach_row_gate(tbl regclass, feature text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.detach_row_gate(tbl regclass, feature text) TO tollgate_app;


--
-- Name: FUNCTION finish_sync_run(run bigint, subscriptions integer, error text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.finish_sync_run(run bigint, subscriptions integer, error text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.finish_sync_run(run bigint, subscriptions integer, error text) TO tollgate_sidecar;


--
-- Name: FUNCTION funnel(since timestamp with time zone, until timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.funnel(since timestamp with time zone, until timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.funnel(since timestamp with time zone, until timestamp with time zone) TO tollgate_sidecar;


--
-- Name: FUNCTION last_sync_run(OUT run bigint, OUT started_at timestamp with time zone, OUT finished_at timestamp with time zone, OUT subscriptions integer); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.last_sync_run(OUT run bigint, OUT started_at timestamp with time zone, OUT finished_at timestamp with time zone, OUT subscriptions integer) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.last_sync_run(OUT run bigint, OUT started_at timestamp with time zone, OUT finished_at timestamp with time zone, OUT subscriptions integer) TO tollgate_sidecar;


--
-- Name: FUNCTION link_checkout_session(stripe_checkout_session text, stripe_customer text, client_reference_id text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.link_checkout_session(stripe_checkout_session text, stripe_customer text, client_reference_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.link_checkout_session(stripe_checkout_session text, stripe_customer text, client_reference_id text) TO tollgate_sidecar;


--
-- Name: FUNCTION note_blocked(customer text, feature text, amount bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.note_blocked(customer text, feature text, amount bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.note_blocked(customer text, feature text, amount bigint) TO tollgate_app;


--
-- Name: FUNCTION outbox_begin(id bigint, attempt integer, provider text, sender text, subject text, body_text text, body_html text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.outbox_begin(id bigint, attempt integer, provider text, sender text, subject text, body_text text, body_html text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.outbox_begin(id bigint, attempt integer, provider text, sender text, subject text, body_text text, body_html text) TO tollgate_sidecar;


--
-- Name: FUNCTION outbox_claim(worker text, n integer, stale interval); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.outbox_claim(worker text, n integer, stale interval) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.outbox_claim(worker text, n integer, stale interval) TO tollgate_sidecar;


--
-- Name: FUNCTION outbox_collect(max_events integer); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.outbox_collect(max_events integer) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.outbox_collect(max_events integer) TO tollgate_sidecar;


--
-- Name: FUNCTION outbox_counts(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.outbox_counts() FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.outbox_counts() TO tollgate_sidecar;


--
-- Name: FUNCTION outbox_failed(id bigint, attempt integer, error text, retry_in interval, permanent boolean, max_attempts integer); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.outbox_failed(id bigint, attempt integer, error text, retry_in interval, permanent boolean, max_attempts integer) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.outbox_failed(id bigint, attempt integer, error text, retry_in interval, permanent boolean, max_attempts integer) TO tollgate_sidecar;


--
-- Name: FUNCTION outbox_register(worker text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.outbox_register(worker text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.outbox_register(worker text) TO tollgate_sidecar;


--
-- Name: FUNCTION outbox_sent(id bigint, provider text, provider_id text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.outbox_sent(id bigint, provider text, provider_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.outbox_sent(id bigint, provider text, provider_id text) TO tollgate_sidecar;


--
-- Name: FUNCTION record_stripe_event(id text, type text, api_version text, object_id text, stripe_created timestamp with time zone); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.record_stripe_event(id text, type text, api_version text, object_id text, stripe_created timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.record_stripe_event(id text, type text, api_version text, object_id text, stripe_created timestamp with time zone) TO tollgate_sidecar;


--
-- Name: FUNCTION refund(customer text, feature text, amount bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.refund(customer text, feature text, amount bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.refund(customer text, feature text, amount bigint) TO tollgate_app;


--
-- Name: FUNCTION remove_feature(feature text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.remove_feature(feature text) FROM PUBLIC;


--
-- Name: FUNCTION remove_limit(plan text, feature text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.remove_limit(plan text, feature text) FROM PUBLIC;


--
-- Name: FUNCTION remove_plan(plan text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.remove_plan(plan text) FROM PUBLIC;


--
-- Name: FUNCTION remove_route(method text, pattern text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.remove_route(method text, pattern text) FROM PUBLIC;


--
-- Name: FUNCTION require(customer text, feature text, amount bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.require(customer text, feature text, amount bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.require(customer text, feature text, amount bigint) TO tollgate_app;


--
-- Name: FUNCTION routes(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.routes() FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.routes() TO tollgate_app;


--
-- Name: FUNCTION set_customer(customer text, email text, stripe_customer text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.set_customer(customer text, email text, stripe_customer text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.set_customer(customer text, email text, stripe_customer text) TO tollgate_app;


--
-- Name: FUNCTION set_email_opt_out(customer text, opted_out boolean); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.set_email_opt_out(customer text, opted_out boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.set_email_opt_out(customer text, opted_out boolean) TO tollgate_app;


--
-- Name: FUNCTION set_limit(plan text, feature text, quota bigint); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.set_limit(plan text, feature text, quota bigint) FROM PUBLIC;


--
-- Name: FUNCTION set_row_counts(feature text, customers text[], counts bigint[]); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.set_row_counts(feature text, customers text[], counts bigint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.set_row_counts(feature text, customers text[], counts bigint[]) TO tollgate_app;


--
-- Name: FUNCTION set_setting(key text, value text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.set_setting(key text, value text) FROM PUBLIC;


--
-- Name: FUNCTION start_sync_run(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.start_sync_run() FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.start_sync_run() TO tollgate_sidecar;


--
-- Name: FUNCTION stripe_event_seen(id text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.stripe_event_seen(id text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.stripe_event_seen(id text) TO tollgate_sidecar;


--
-- Name: FUNCTION sync_subscription(stripe_subscription text, stripe_customer text, status text, price_ids text[], product_ids text[], current_period_start timestamp with time zone, current_period_end timestamp with time zone, cancel_at_period_end boolean, stripe_created timestamp with time zone, fetched_at timestamp with time zone, tollgate_customer text, OUT customer text, OUT plan text, OUT applied boolean); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.sync_subscription(stripe_subscription text, stripe_customer text, status text, price_ids text[], product_ids text[], current_period_start timestamp with time zone, current_period_end timestamp with time zone, cancel_at_period_end boolean, stripe_created timestamp with time zone, fetched_at timestamp with time zone, tollgate_customer text, OUT customer text, OUT plan text, OUT applied boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.sync_subscription(stripe_subscription text, stripe_customer text, status text, price_ids text[], product_ids text[], current_period_start timestamp with time zone, current_period_end timestamp with time zone, cancel_at_period_end boolean, stripe_created timestamp with time zone, fetched_at timestamp with time zone, tollgate_customer text, OUT customer text, OUT plan text, OUT applied boolean) TO tollgate_sidecar;


--
-- Name: FUNCTION unmapped_subscriptions(); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.unmapped_subscriptions() FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.unmapped_subscriptions() TO tollgate_sidecar;


--
-- Name: FUNCTION usage(customer text); Type: ACL; Schema: tollgate; Owner: -
--

REVOKE ALL ON FUNCTION tollgate.usage(customer text) FROM PUBLIC;
GRANT ALL ON FUNCTION tollgate.usage(customer text) TO tollgate_app;


--
-- Name: TABLE schema_version; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.schema_version TO tollgate_sidecar;


--
-- Name: TABLE code_package; Type: ACL; Schema: tollgate; Owner: -
--

GRANT SELECT ON TABLE tollgate.code_package TO tollgate_sidecar;


--
-- PostgreSQL database dump complete
--


