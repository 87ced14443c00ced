-- The trigger that attach_row_gate puts on an app table: counts rows per
-- customer, so "at most 3 projects on free" holds for every writer (Django,
-- the admin, raw SQL). INSERT consumes 1 (TG402 when over the limit), DELETE
-- gives 1 back, and an UPDATE of the customer column moves the count.
-- Arguments: the customer column, the feature.
CREATE OR REPLACE FUNCTION tollgate._row_gate()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_old text;
  v_new text;
  v tollgate.verdict;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    v_old := pg_catalog.to_jsonb(OLD) ->> TG_ARGV[0];
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    v_new := pg_catalog.to_jsonb(NEW) ->> TG_ARGV[0];
  END IF;
  IF v_old IS NOT DISTINCT FROM v_new THEN
    RETURN NULL;
  END IF;
  IF v_old IS NOT NULL AND v_old <> '' THEN
    PERFORM tollgate._gate(v_old, TG_ARGV[1], 1, 'refund', now());
  END IF;
  IF v_new IS NOT NULL THEN
    v := tollgate._gate(v_new, TG_ARGV[1], 1, 'consume', now());
    IF NOT v.allowed THEN
      PERFORM tollgate._raise_quota_exceeded(v, 1);
    END IF;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION tollgate._row_gate() IS
  'Trigger function of row gates (see attach_row_gate); arguments: customer column, feature.';
