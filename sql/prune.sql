-- Drop the tollgate functions the package no longer defines (see
-- CONTRIBUTING.md, "Migrations and the code package"). Included after every
-- file that creates functions and before grants.sql, whose REVOKE ... ON ALL
-- FUNCTIONS rewrites the catalog row of every function, stale ones too.
--
-- The package runs in one transaction (tollgate migrate and tern code install
-- both send it as one string inside BEGIN ... COMMIT), and every function
-- above was created or replaced by it: CREATE OR REPLACE rewrites the pg_proc
-- row, so its xmin is this transaction even when nothing changed. A function
-- of schema tollgate with another xmin is one the package no longer defines.
-- It is dropped RESTRICT: when an object outside the package depends on it (an
-- app's view, a trigger on an app table), the install fails with SQLSTATE 2BP01
-- and changes nothing, rather than dropping the app's object with it.
-- (Functions must therefore be created at the top level of the package, not in
-- a subtransaction such as a DO block with an EXCEPTION clause.)
DO $$
DECLARE
  r record;
  v_detail text;
BEGIN
  FOR r IN
    SELECT p.oid::pg_catalog.regprocedure AS fn,
           CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END AS kind
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'tollgate'::pg_catalog.regnamespace
       AND p.xmin <> pg_catalog.pg_current_xact_id()::xid
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d  -- members of an extension are the extension's
                        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
     ORDER BY p.oid::pg_catalog.regprocedure::text
  LOOP
    BEGIN
      EXECUTE pg_catalog.format('DROP %s %s RESTRICT', r.kind, r.fn);
    EXCEPTION WHEN dependent_objects_still_exist THEN
      GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
      RAISE EXCEPTION 'the code package no longer defines % but other objects depend on it', r.fn
        USING ERRCODE = 'dependent_objects_still_exist', DETAIL = v_detail,
              HINT = 'Drop or change those objects first, or keep the function in the package.';
    END;
  END LOOP;
END
$$;
