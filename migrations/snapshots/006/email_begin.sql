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
$$;
COMMENT ON FUNCTION tollgate.outbox_begin(bigint, integer, text, text, text, text, text) IS
  'Records that the claim (id, attempt) starts handing the email to provider, and returns the email to send: the '
  'one stored by the first hand-off of this row if there was one, otherwise the given rendering, which is stored. '
  'Returns no row when the claim was lost (another worker took the row over): then do not send. Errors: TG422 for '
  'an empty provider or a NULL part.';

GRANT EXECUTE ON FUNCTION tollgate.outbox_begin(bigint, integer, text, text, text, text, text) TO tollgate_sidecar;
