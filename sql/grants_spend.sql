-- Grants: units on top of the window quota, spent once it is used up, across
-- windows, until they expire. Only the full path spends them, holding the
-- customer's usage row, so spending is exact under any concurrency.

-- Spends p_units from the customer's unexpired grants, soonest to expire first.
CREATE OR REPLACE FUNCTION tollgate._spend_grants(p_customer text, p_feature text, p_units bigint, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  v_left bigint := p_units;
  g record;
BEGIN
  FOR g IN
    SELECT x.id, x.amount - x.spent AS left_over
      FROM tollgate.grants x
     WHERE x.customer = p_customer AND x.feature = p_feature AND x.spent < x.amount
       AND (x.expires_at IS NULL OR x.expires_at > p_at)
     ORDER BY x.expires_at NULLS LAST, x.id
       FOR UPDATE
  LOOP
    EXIT WHEN v_left = 0;
    UPDATE tollgate.grants x SET spent = x.spent + least(g.left_over, v_left)
     WHERE x.customer = p_customer AND x.id = g.id;
    v_left := v_left - least(g.left_over, v_left);
  END LOOP;
END
$$;

-- Gives up to p_units back to the customer's unexpired grants that were
-- spent, the ones to expire last first; returns how many went back (units
-- of a grant that has expired since are gone).
CREATE OR REPLACE FUNCTION tollgate._unspend_grants(p_customer text, p_feature text, p_units bigint, p_at timestamptz)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
  v_left bigint := p_units;
  g record;
BEGIN
  FOR g IN
    SELECT x.id, x.spent
      FROM tollgate.grants x
     WHERE x.customer = p_customer AND x.feature = p_feature AND x.spent > 0
       AND (x.expires_at IS NULL OR x.expires_at > p_at)
     ORDER BY x.expires_at DESC NULLS FIRST, x.id DESC
       FOR UPDATE
  LOOP
    EXIT WHEN v_left = 0;
    UPDATE tollgate.grants x SET spent = x.spent - least(g.spent, v_left)
     WHERE x.customer = p_customer AND x.id = g.id;
    v_left := v_left - least(g.spent, v_left);
  END LOOP;
  RETURN p_units - v_left;
END
$$;
