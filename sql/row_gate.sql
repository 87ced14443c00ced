-- The trigger that attach_row_gate puts on an app table: counts rows per
-- customer, so "at most 3 projects on free" holds for every writer (Django,
-- the admin, raw SQL). INSERT requires 1 (TG402 when over the limit), DELETE
-- refunds 1, and an UPDATE of the customer column moves the count.
-- Arguments: the customer column, the feature.
--
-- SECURITY INVOKER on purpose: it reads the row of the caller's own table,
-- whose columns may be of the caller's own types with the caller's own casts,
-- so it runs with the rights of whoever writes the row and reaches usage only
-- through the public functions, which take plain text. Whoever writes a gated
-- table must therefore be allowed to call them (a member of tollgate_app).
CREATE OR REPLACE FUNCTION tollgate._row_gate()
RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION tollgate._row_gate() IS
  'Trigger function of row gates (see attach_row_gate); arguments: customer column, feature. Runs with the '
  'rights of the role that writes the row, which must be a member of tollgate_app.';
