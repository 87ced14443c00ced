CREATE OR REPLACE FUNCTION tollgate.outbox_sent(id bigint, provider text, provider_id text)
RETURNS double precision
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_id bigint := $1;
  v_provider text := $2;
  v_provider_id text := $3;
  v_customer text;
  v_event bigint;
  v_seconds double precision;
BEGIN
  PERFORM tollgate._check_claim(v_id, 1);
  IF v_provider IS NULL OR v_provider = '' OR pg_catalog.length(v_provider) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'provider must be a text of 1 to 255 characters';
  END IF;
  IF pg_catalog.length(v_provider_id) > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'provider_id must be at most 1000 characters';
  END IF;
  -- The provider accepted the email, so this holds whoever claims the row
  -- now: even a row given up as dead meanwhile was in fact sent.
  UPDATE tollgate.emails m
     SET status = 'sent', sent_at = pg_catalog.now(), provider = v_provider, provider_id = v_provider_id,
         handed_off_at = NULL, last_error = NULL
   WHERE m.id = v_id AND m.status <> 'sent'
  RETURNING m.customer, m.event_id INTO v_customer, v_event;
  -- (a statement of its own: on a Citus cluster RETURNING takes no now() and
  -- no subquery of another table)
  SELECT extract(epoch FROM pg_catalog.now() - e.created_at) INTO v_seconds
    FROM tollgate.events e WHERE e.customer = v_customer AND e.id = v_event;
  RETURN v_seconds;
END
$$;
COMMENT ON FUNCTION tollgate.outbox_sent(bigint, text, text) IS
  'Marks email id as sent by provider (resend, smtp or log) with the provider''s message id, and returns the '
  'seconds from its event to now; NULL when it was marked sent already. Errors: TG422 for a NULL or non-positive id, '
  'an empty or over-long (255) provider, or a provider_id over 1000 characters.';

CREATE OR REPLACE FUNCTION tollgate.outbox_failed(
  id bigint,
  attempt integer,
  error text,
  retry_in interval,
  permanent boolean,
  max_attempts integer)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_id bigint := $1;
  v_attempt integer := $2;
  v_error text := $3;
  v_retry_in interval := $4;
  v_permanent boolean := $5;
  v_max integer := $6;
  v_status text;
BEGIN
  PERFORM tollgate._check_claim(v_id, v_attempt);
  IF pg_catalog.length(v_error) > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'error must be at most 10000 characters';
  END IF;
  IF v_retry_in > interval '366 days' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'retry_in must be at most 366 days';
  END IF;
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
$$;
COMMENT ON FUNCTION tollgate.outbox_failed(bigint, integer, text, interval, boolean, integer) IS
  'Records that the claim (id, attempt) failed with error (the provider''s message). The row is retried after '
  'retry_in (the database''s clock), or is dead when permanent or once it has had max_attempts attempts. Returns '
  'the new status, failed or dead, or NULL when the claim was lost meanwhile (nothing changes). Errors: TG422 for '
  'a NULL or non-positive id or attempt, an error over 10000 characters, a retry_in over 366 days, a NULL '
  'permanent or a max_attempts below 1.';

CREATE OR REPLACE FUNCTION tollgate.outbox_counts()
RETURNS TABLE (status text, emails bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  SELECT s.status, count(m.id)
    FROM unnest(ARRAY['pending', 'sending', 'sent', 'failed', 'dead', 'skipped']) AS s(status)
    LEFT JOIN tollgate.emails m ON m.status = s.status
   GROUP BY s.status
   ORDER BY s.status
$$;
COMMENT ON FUNCTION tollgate.outbox_counts() IS
  'How many emails the outbox holds in each status (pending, sending, sent, failed, dead, skipped): for metrics '
  'and reports.';

GRANT EXECUTE ON FUNCTION
  tollgate.outbox_sent(bigint, text, text),
  tollgate.outbox_failed(bigint, integer, text, interval, boolean, integer),
  tollgate.outbox_counts()
TO tollgate_sidecar;
