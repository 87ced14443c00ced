-- attach_row_gate and detach_row_gate are SECURITY INVOKER on purpose: they
-- act on the caller's own table with the caller's own rights (it must own
-- the table, as a Django migration does), so tollgate's owner never needs
-- rights on app tables, never reads a value of an app type, and cannot be
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
  v_customers text[];
  v_counts bigint[];
BEGIN
  IF v_tbl IS NULL OR v_column IS NULL OR v_feature IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'attach_row_gate needs a table, a customer column and a feature';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = v_tbl AND a.attname = v_column AND a.attnum > 0 AND NOT a.attisdropped) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('table %s has no column %I', v_tbl, v_column);
  END IF;
  v_trigger := left('tollgate_gate_' || v_feature, 63);
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = v_tbl AND t.tgname = v_trigger) THEN
    EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, v_tbl); -- attaching again replaces the gate
  END IF;
  -- CREATE TRIGGER locks the table against writes until this transaction
  -- ends, so the rows counted below are exactly the rows the gate starts from.
  EXECUTE format(
    'CREATE TRIGGER %I AFTER INSERT OR DELETE OR UPDATE OF %I ON %s '
    'FOR EACH ROW EXECUTE FUNCTION tollgate._row_gate(%L, %L)',
    v_trigger, v_column, v_tbl, v_column, v_feature);
  EXECUTE format('SELECT array_agg(k ORDER BY k), array_agg(n ORDER BY k) '
                 'FROM (SELECT %I::text AS k, count(*) AS n FROM %s WHERE %I IS NOT NULL GROUP BY 1) rows '
                 'WHERE k <> %L',
                 v_column, v_tbl, v_column, '')
    INTO v_customers, v_counts;
  PERFORM tollgate.set_row_counts(v_feature, coalesce(v_customers, '{}'), coalesce(v_counts, '{}'));
END
$$;
COMMENT ON FUNCTION tollgate.attach_row_gate(regclass, name, text) IS
  'Gates rows of an app table per customer: a trigger requires 1 of feature on INSERT (raising TG402 when over the '
  'limit), refunds it on DELETE, and moves it when customer_column changes. Use a lifetime feature for "at most '
  '3 projects". Attaching counts the rows present exactly (a customer already over the limit stays over it, and '
  'a customer with no rows is set to 0), so detach, change rows, attach again gives exact counts. Call it as the '
  'table''s owner, for example from a Django migration: RunSQL(attach, reverse_sql=detach). Roles that write the '
  'table must be members of tollgate_app. TRUNCATE does not fire row triggers. Errors: TG404 unknown feature, '
  'TG422 unknown column or a rolling feature.';

CREATE OR REPLACE FUNCTION tollgate.detach_row_gate(tbl regclass, feature text)
RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_trigger name;
BEGIN
  IF $1 IS NULL OR $2 IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'detach_row_gate needs a table and a feature';
  END IF;
  v_trigger := left('tollgate_gate_' || $2, 63);
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1 AND t.tgname = v_trigger) THEN
    RETURN false;
  END IF;
  EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, $1);
  RETURN true;
END
$$;
COMMENT ON FUNCTION tollgate.detach_row_gate(regclass, text) IS
  'Removes the row gate of feature from a table (the reverse of attach_row_gate); the counts stay as they are '
  'until a gate is attached again, which recounts. Returns false when the table had no such gate. Call it as '
  'the table''s owner.';
