-- Any change to the configuration tables, whoever makes it, bumps the
-- version that usage rows copied their plan and quota at: each row takes the
-- full path once and picks the change up.
CREATE OR REPLACE FUNCTION tollgate._bump_config_version()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  UPDATE tollgate.config_state SET version = version + 1;
  RETURN NULL;
END
$$;

-- The trigger DDL runs through EXECUTE, one statement per string: on a Citus
-- cluster these are reference tables, and Citus sends a trigger's DDL to the
-- other nodes as the text of the statement the client sent, which for the
-- package (one string) would be the whole package (docs/scaling.md).
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['plans', 'features', 'limits'] LOOP
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS bump_config_version ON tollgate.%I', t);
    EXECUTE pg_catalog.format('CREATE TRIGGER bump_config_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tollgate.%I '
                              'FOR EACH STATEMENT EXECUTE FUNCTION tollgate._bump_config_version()', t);
  END LOOP;
END
$$;
