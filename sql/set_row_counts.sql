-- What attach_row_gate counts with: sets the current window's usage of a
-- feature to the given counts, and to 0 for every other customer who has
-- usage of it. Exact in both directions, and writes no events (attaching a
-- gate in a migration prompts nobody). Customers are taken in key order, so
-- two recounts cannot deadlock. Takes plain arrays: the app's rows were read
-- by attach_row_gate with the caller's rights.
CREATE OR REPLACE FUNCTION tollgate.set_row_counts(feature text, customers text[], counts bigint[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_feature text := $1;
  v_unit text;
  v_customer text;
  v_count bigint;
  v_n bigint := 0;
  r tollgate.usage;
BEGIN
  PERFORM tollgate._check_text('feature', v_feature, 63);
  IF $2 IS NULL OR $3 IS NULL OR cardinality($2) <> cardinality($3) OR array_position($2, NULL) IS NOT NULL
     OR array_position($3, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'customers and counts must be arrays of the same length without NULLs';
  END IF;
  IF EXISTS (SELECT FROM unnest($3) n WHERE n < 0) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'counts must not be negative';
  END IF;
  PERFORM tollgate._check_text('customer', c, 255) FROM unnest($2) c;
  SELECT f.period_unit INTO v_unit FROM tollgate.features f WHERE f.feature = v_feature;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('unknown feature %L', v_feature);
  END IF;
  IF v_unit = 'rolling' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('feature %s has a rolling period; a row gate needs a fixed or lifetime one', v_feature);
  END IF;

  FOR v_customer, v_count IN
    SELECT k.customer, coalesce(max(k.n), 0)
      FROM (SELECT c AS customer, n FROM unnest($2, $3) AS t(c, n)
            UNION ALL
            SELECT u.customer, NULL FROM tollgate.usage u WHERE u.feature = v_feature) k
     GROUP BY k.customer
     ORDER BY k.customer
  LOOP
    r := tollgate._usage_row(v_customer, v_feature, now(), true);
    DELETE FROM tollgate.usage_shards s
     WHERE s.customer = v_customer AND s.feature = v_feature AND s.window_start = r.window_start;
    r.used := v_count;
    r.limit_hit := false;
    r.next_mark := tollgate._next_mark(v_feature, r.used, r.quota, r.soft);
    PERFORM tollgate._save_usage(r);
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION tollgate.set_row_counts(text, text[], bigint[]) IS
  'Used by attach_row_gate: sets feature''s usage in the current window to counts for customers, and to 0 for '
  'every other customer with usage of it. Writes no events. Returns how many customers it set. Errors: TG404 '
  'unknown feature, TG422 invalid argument or a rolling feature.';
