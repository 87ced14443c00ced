-- Reconcile runs. One replica at a time: a run holds a session-level advisory
-- lock from start_sync_run to finish_sync_run, on one connection; a replica
-- that dies loses its connection and with it the lock.
CREATE OR REPLACE FUNCTION tollgate.start_sync_run()
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
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
COMMENT ON FUNCTION tollgate.start_sync_run() IS
  'Sidecar: starts a reconcile run if no other session runs one, and returns its id; NULL when another session holds '
  'the reconcile lock. The lock belongs to the calling session: call finish_sync_run on the same connection.';

CREATE OR REPLACE FUNCTION tollgate.finish_sync_run(run bigint, subscriptions integer, error text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  IF $1 IS NULL OR $1 < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('run must be a run id from start_sync_run, not %s', coalesce($1::text, 'NULL'));
  END IF;
  IF $2 IS NULL OR $2 < 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('subscriptions must be 0 or more, not %s', coalesce($2::text, 'NULL'));
  END IF;
  PERFORM tollgate._check_text('error', $3, 10000, true);
  UPDATE tollgate.sync_runs r
     SET finished_at = now(), subscriptions = $2, error = $3
   WHERE r.id = $1 AND r.finished_at IS NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('no running reconcile run %s', $1);
  END IF;
  PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended('tollgate stripe reconcile', 0));
  -- housekeeping: Stripe retries an event for up to 3 days; keep ids a month
  DELETE FROM tollgate.stripe_events e WHERE e.received_at < now() - interval '30 days';
  DELETE FROM tollgate.sync_runs r WHERE r.started_at < now() - interval '90 days';
END
$$;
COMMENT ON FUNCTION tollgate.finish_sync_run(bigint, integer, text) IS
  'Sidecar: ends reconcile run (from start_sync_run, on the same connection) with the number of subscriptions it '
  'synced and, when it stopped early, the error; releases the reconcile lock. Forgets webhook event ids older than '
  '30 days and runs older than 90. Errors: TG422 for a NULL or negative run or subscriptions, or an empty or '
  'over-long (10000) error; TG404 when the run is unknown or finished.';

-- The last finished reconcile run without error, for /metrics and tollgate report.
CREATE OR REPLACE FUNCTION tollgate.last_sync_run(OUT run bigint, OUT started_at timestamptz,
  OUT finished_at timestamptz, OUT subscriptions integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  SELECT r.id, r.started_at, r.finished_at, r.subscriptions
    FROM tollgate.sync_runs r
   WHERE r.finished_at IS NOT NULL AND r.error IS NULL
   ORDER BY r.finished_at DESC
   LIMIT 1
$$;
COMMENT ON FUNCTION tollgate.last_sync_run() IS
  'Sidecar: the last reconcile run that finished without error (all NULL when none has).';

GRANT EXECUTE ON FUNCTION
  tollgate.start_sync_run(),
  tollgate.finish_sync_run(bigint, integer, text),
  tollgate.last_sync_run()
TO tollgate_sidecar;
