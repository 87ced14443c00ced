-- The claim (id, attempt) that outbox_begin, outbox_sent and outbox_failed
-- are given: both positive (TG422 otherwise); an unknown one is a lost claim.
CREATE OR REPLACE FUNCTION tollgate._check_claim(p_id bigint, p_attempt integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF p_id IS NULL OR p_id < 1 OR p_attempt IS NULL OR p_attempt < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('id and attempt must be positive, as tollgate.outbox_claim gives them, not %s and %s',
                                  coalesce(p_id::text, 'NULL'), coalesce(p_attempt::text, 'NULL'));
  END IF;
END
$$;

-- Liveness of outbox workers. A worker holds a session advisory lock named
-- after itself for as long as it runs (tollgate.outbox_register on a
-- connection it keeps open). When its process dies, PostgreSQL releases the
-- lock with the connection, and the next claim takes over its unfinished rows
-- without waiting for the stale-claim timeout.
--
-- Key: class 1953459308 ('toll' in ASCII) and hashtext(worker). A collision
-- with another lock only makes a dead worker look alive until its claims go
-- stale: the safe direction.
CREATE OR REPLACE FUNCTION tollgate._outbox_worker_gone(p_worker text)
RETURNS boolean
LANGUAGE sql
AS $$
  -- Taking the lock succeeds only if no session holds it. It is released at
  -- the end of the claiming transaction.
  SELECT p_worker IS NOT NULL
     AND pg_catalog.pg_try_advisory_xact_lock(1953459308, pg_catalog.hashtext(p_worker))
$$;

CREATE OR REPLACE FUNCTION tollgate.outbox_register(worker text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  IF worker IS NULL OR worker = '' OR pg_catalog.length(worker) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'worker must be a text of 1 to 255 characters';
  END IF;
  -- Waits only while a claim is checking whether this name is alive (until
  -- that claim commits). Repeated calls on one session are harmless.
  PERFORM pg_catalog.pg_advisory_lock(1953459308, pg_catalog.hashtext(worker));
END
$$;
COMMENT ON FUNCTION tollgate.outbox_register(text) IS
  'Marks worker as alive for as long as the calling session lasts (a session advisory lock), so that when it dies '
  'its claimed emails are taken over at once by the next tollgate.outbox_claim. Call it on a connection the worker '
  'keeps open, such as its LISTEN connection, before claiming. Worker names must be unique per process. Errors: '
  'TG422 for a NULL, empty or over-long (255) name.';

GRANT EXECUTE ON FUNCTION tollgate.outbox_register(text) TO tollgate_sidecar;
