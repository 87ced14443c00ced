-- 006: where the code package (sql/) records which version of itself is
-- installed.
--
-- The functions, triggers and grants of sql/ are not versioned migrations: they
-- are reinstalled whole, after the migrations, whenever they changed
-- (tollgate migrate does it when the sha256 of the rendered package differs
-- from the one recorded here; with plain tern, run `tern code install sql` after
-- `tern migrate`). The package drops the tollgate functions it no longer
-- defines (sql/prune.sql), and its last file (sql/record_install.sql) writes
-- this row with the sha256 of the text it was sent as, so the row always
-- describes the package that ran last, whichever tool ran it.
--
-- A table, not a comment or a setting: it is data (a migration creates it, so
-- both install paths have it before the package runs), it is private like every
-- table of the schema, and it goes away with the schema on the way down. The
-- sidecar's role may read it (its readiness check compares the hash with the
-- package built into its binary).
CREATE TABLE tollgate.code_package (
  singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  installed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tollgate.code_package IS
  'The code package (sql/) installed last: the sha256 of its rendered text as sent to the server, and when.';
GRANT SELECT ON tollgate.code_package TO tollgate_sidecar;

---- create above / drop below ----

-- Below this version there is no code package: drop every tollgate function,
-- with what depends on them (the package's triggers, and the row gates that
-- attach_row_gate put on app tables). tollgate migrate has done this already
-- before it goes down; this is for `tern migrate --destination`.
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

DROP TABLE tollgate.code_package;
