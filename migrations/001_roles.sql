-- 001: the two roles that tollgate grants to.
--
-- tollgate_app:     the role a Django database user is made a member of
--                   (GRANT tollgate_app TO django_user). It may only call the
--                   public functions; it has no table privileges at all.
-- tollgate_sidecar: the role the sidecar's login role is made a member of.
--
-- Roles are cluster-wide: another database in the same cluster may have created
-- them already, or be creating them right now, so they are created only when
-- absent and a concurrent creation is tolerated. Both are NOLOGIN: operators
-- grant them to login roles of their own.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['tollgate_app', 'tollgate_sidecar'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- another database of this cluster created it first
      END;
    END IF;
  END LOOP;
END
$$;

---- create above / drop below ----

-- Roles are shared by every database of the cluster, so going down keeps them:
-- other databases may still use them. Once no database uses tollgate, an
-- operator may run: DROP ROLE tollgate_app; DROP ROLE tollgate_sidecar;
DO $$ BEGIN END $$;
