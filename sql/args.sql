-- Argument checks shared by every entry function: one documented maximum per
-- kind of name, checked up front (_check_text: NULL passes only when
-- p_nullable), so a bad argument is answered with TG422
-- before anything is read or written (and never reaches an index as a value
-- too long for it).
--
--   customer keys, Stripe ids   1 to 255 characters
--   feature and plan names      1 to 63 characters
--   emails                      up to 320 characters (RFC 5321)
--   amounts                     1 to 9223372036854775807
-- (0.1.0 had no p_nullable: its three-argument form would make calls ambiguous)
DROP FUNCTION IF EXISTS tollgate._check_text(text, text, integer);
CREATE OR REPLACE FUNCTION tollgate._check_text(p_what text, p_value text, p_max integer,
                                                p_nullable boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF p_value IS NULL AND p_nullable THEN
    RETURN;
  END IF;
  IF p_value IS NULL OR p_value = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('%s must be a non-empty text', p_what);
  END IF;
  IF pg_catalog.length(p_value) > p_max THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('%s must be at most %s characters long, not %s', p_what, p_max, pg_catalog.length(p_value));
  END IF;
END
$$;

-- The arguments of consume, check, require, refund and note_blocked, by the
-- same rules in one place. _bad_args is a plain expression the planner
-- inlines, so the hot path pays no function call for good arguments;
-- _check_args says what is wrong.
CREATE OR REPLACE FUNCTION tollgate._bad_args(p_customer text, p_feature text, p_amount bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
  SELECT NOT coalesce(pg_catalog.length(p_customer) BETWEEN 1 AND 255
                      AND pg_catalog.length(p_feature) BETWEEN 1 AND 63 AND p_amount > 0, false)
$$;

CREATE OR REPLACE FUNCTION tollgate._check_args(p_customer text, p_feature text, p_amount bigint)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF NOT tollgate._bad_args(p_customer, p_feature, p_amount) THEN
    RETURN;
  END IF;
  PERFORM tollgate._check_text('customer', p_customer, 255);
  PERFORM tollgate._check_text('feature', p_feature, 63);
  RAISE EXCEPTION USING ERRCODE = 'TG422',
    MESSAGE = format('amount must be a positive integer, not %s', coalesce(p_amount::text, 'NULL'));
END
$$;
