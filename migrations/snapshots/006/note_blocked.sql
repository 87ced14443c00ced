CREATE OR REPLACE FUNCTION tollgate.note_blocked(customer text, feature text, amount bigint DEFAULT 1)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN tollgate._gate($1, $2, $3, 'note', now());
END
$$;
COMMENT ON FUNCTION tollgate.note_blocked(text, text, bigint) IS
  'For a call that was blocked with TG402 (tollgate.require, a row gate): the error rolled back the call''s '
  'limit_reached event with its transaction, so no upgrade prompt would follow. Call this after the rollback, in a '
  'transaction that commits: when the call would still be blocked it records the window''s limit_reached event '
  '(once, however often it is called); it never counts usage. Returns the verdict. The Django helper calls it for '
  'you. Errors: TG404 unknown feature, TG422 invalid argument.';
