-- The columns before event_id and variant: a reinstall over them must drop it
-- (a return type cannot be replaced).
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_proc p
              WHERE p.oid = to_regprocedure('tollgate.outbox_claim(text, integer, interval)')
                AND NOT 'variant' = ANY (p.proargnames)) THEN
    DROP FUNCTION tollgate.outbox_claim(text, integer, interval);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION tollgate.outbox_claim(worker text, n integer DEFAULT 1, stale interval DEFAULT '5 minutes')
RETURNS TABLE (
  id              bigint,
  attempt         integer,
  interrupted     boolean,
  last_provider   text,
  template        text,
  customer        text,
  to_email        text,
  feature         text,
  plan            text,
  used            bigint,
  quota           bigint,
  period_start    timestamptz,
  resets_at       timestamptz,
  message         text,
  event_at        timestamptz,
  sender          text,
  subject         text,
  body_text       text,
  body_html       text,
  event_id        bigint,
  variant         text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_worker text := $1;
  v_n integer := $2;
  v_stale interval := $3;
BEGIN
  IF v_worker IS NULL OR v_worker = '' OR pg_catalog.length(v_worker) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'worker must be a text of 1 to 255 characters';
  END IF;
  IF v_n IS NULL OR v_n < 1 OR v_n > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('n must be from 1 to 10000, not %s', coalesce(v_n::text, 'NULL'));
  END IF;
  IF v_stale IS NULL OR v_stale <= interval '0' OR v_stale > interval '366 days' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = pg_catalog.format('stale must be a positive interval of at most 366 days, not %s',
                                  coalesce(v_stale::text, 'NULL'));
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
         m.feature, e.plan, e.used, e.quota, m.period_start, e.period_end, coalesce(pv.message, f.message), e.created_at,
         m.sender, m.subject, m.body_text, m.body_html, m.event_id, m.variant
    FROM claimed m
    JOIN tollgate.events e ON e.id = m.event_id
    LEFT JOIN tollgate.features f ON f.feature = m.feature
    LEFT JOIN tollgate.prompt_variants pv ON pv.feature = m.feature AND pv.variant = m.variant
   WHERE m.status = 'sending'
   ORDER BY m.next_attempt_at, m.id;
END
$$;
COMMENT ON FUNCTION tollgate.outbox_claim(text, integer, interval) IS
  'Claims up to n emails that are due for worker (FOR UPDATE SKIP LOCKED: replicas never get the same row) and '
  'returns what rendering and sending them needs (message and template are the prompt variant''s when it has '
  'its own; event_id and variant go into the email''s upgrade link). Due: pending, failed whose next_attempt_at has come, and sending '
  'rows whose worker is gone (see tollgate.outbox_register) or whose claim is older than stale. attempt identifies '
  'this claim in tollgate.outbox_begin and tollgate.outbox_failed. interrupted says that an earlier claim was cut '
  'off while handing the email to last_provider; sender, subject, body_text and body_html are then the email as it '
  'was handed off, to be sent byte for byte. Emails whose customer opted out or has no address any more are skipped '
  'instead of returned. Errors: TG422 for a NULL, empty or over-long (255) worker, an n outside 1 to 10000 or a '
  'stale interval that is not positive or over 366 days.';

GRANT EXECUTE ON FUNCTION tollgate.outbox_claim(text, integer, interval) TO tollgate_sidecar;
