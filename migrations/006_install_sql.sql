-- 006: the SQL API (functions, triggers, grants) as released: a frozen copy of
-- the sql/ code package in snapshots/006 (see CONTRIBUTING.md, "Snapshots").
{{ install_snapshot "006" }}

---- create above / drop below ----

-- Drops every function of the code package, with the triggers that use them
-- (also row gates that attach_row_gate put on app tables).
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'tollgate'::regnamespace LOOP
    EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.fn);
  END LOOP;
END
$$;
