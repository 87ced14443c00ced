-- SECURITY INVOKER on purpose: it creates a trigger on the caller's table with
-- the caller's own rights (it must own the table, as a Django migration does),
-- so tollgate's owner role never needs rights on app tables and cannot be
-- used as a confused deputy. Usage goes through the public functions only.
CREATE OR REPLACE FUNCTION tollgate.attach_row_gate(tbl regclass, customer_column name, feature text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tbl regclass := $1;
  v_column name := $2;
  v_feature text := $3;
  v_trigger name;
  v_customer text;
  v_rows bigint;
  v tollgate.verdict;
  v_need bigint;
BEGIN
  IF v_tbl IS NULL OR v_column IS NULL OR v_feature IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'attach_row_gate needs a table, a customer column and a feature';
  END IF;
  -- raises TG404 for an unknown feature, and changes nothing
  PERFORM tollgate.check('attach_row_gate', v_feature);
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = v_tbl AND a.attname = v_column AND a.attnum > 0 AND NOT a.attisdropped) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('table %s has no column %I', v_tbl, v_column);
  END IF;
  v_trigger := left('tollgate_gate_' || v_feature, 63);
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = v_tbl AND t.tgname = v_trigger) THEN
    EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, v_tbl); -- attaching again replaces the gate
  END IF;
  EXECUTE format(
    'CREATE TRIGGER %I AFTER INSERT OR DELETE OR UPDATE OF %I ON %s '
    'FOR EACH ROW EXECUTE FUNCTION tollgate._row_gate(%L, %L)',
    v_trigger, v_column, v_tbl, v_column, v_feature);
  -- Count the rows that are already there, through the public functions:
  -- a customer already over the limit is counted up to the limit.
  FOR v_customer, v_rows IN
    EXECUTE format('SELECT %I::text, count(*) FROM %s WHERE %I IS NOT NULL GROUP BY 1', v_column, v_tbl, v_column)
  LOOP
    CONTINUE WHEN v_customer = '';
    v := tollgate.check(v_customer, v_feature);
    v_need := v_rows - v.used;
    IF v.remaining IS NOT NULL THEN
      v_need := least(v_need, v.remaining);
    END IF;
    IF v_need > 0 THEN
      PERFORM tollgate.consume(v_customer, v_feature, v_need);
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION tollgate.attach_row_gate(regclass, name, text) IS
  'Gates rows of an app table per customer: a trigger consumes feature on INSERT (raising TG402 when over the '
  'limit), gives it back on DELETE, and moves it when customer_column changes. Use a lifetime feature for '
  '"at most 3 projects". Rows already in the table are counted (up to the limit). Call it as the table''s owner, '
  'for example from a Django migration with RunSQL. TRUNCATE does not fire row triggers. Errors: TG404 unknown '
  'feature, TG422 unknown column.';
