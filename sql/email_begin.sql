CREATE OR REPLACE FUNCTION tollgate.outbox_begin(
  id bigint,
  attempt integer,
  provider text,
  sender text,
  subject text,
  body_text text,
  body_html text)
RETURNS TABLE (email_to text, email_from text, email_subject text, email_text text, email_html text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_id bigint := $1;
  v_attempt integer := $2;
  v_provider text := $3;
BEGIN
  PERFORM tollgate._check_claim(v_id, v_attempt);
  IF v_provider IS NULL OR v_provider = '' OR pg_catalog.length(v_provider) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'provider must be a text of 1 to 255 characters';
  END IF;
  IF $4 IS NULL OR $5 IS NULL OR $6 IS NULL OR $7 IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'sender, subject, body_text and body_html must not be NULL';
  END IF;
  IF pg_catalog.length($4) > 1000 OR pg_catalog.length($5) > 10000
     OR pg_catalog.length($6) > 1048576 OR pg_catalog.length($7) > 1048576 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'sender (1000), subject (10000), body_text and body_html (1048576 characters each) are too long';
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
$$;
COMMENT ON FUNCTION tollgate.outbox_begin(bigint, integer, text, text, text, text, text) IS
  'Records that the claim (id, attempt) starts handing the email to provider, and returns the email to send: the '
  'one stored by the first hand-off of this row if there was one, otherwise the given rendering, which is stored. '
  'Returns no row when the claim was lost (another worker took the row over): then do not send. Errors: TG422 for '
  'a NULL or non-positive id or attempt, an empty or over-long (255) provider, or a NULL or over-long part '
  '(sender 1000, subject 10000, bodies 1048576 characters).';

GRANT EXECUTE ON FUNCTION tollgate.outbox_begin(bigint, integer, text, text, text, text, text) TO tollgate_sidecar;
