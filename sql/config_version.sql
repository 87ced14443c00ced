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

DROP TRIGGER IF EXISTS bump_config_version ON tollgate.plans;
CREATE TRIGGER bump_config_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tollgate.plans
  FOR EACH STATEMENT EXECUTE FUNCTION tollgate._bump_config_version();
DROP TRIGGER IF EXISTS bump_config_version ON tollgate.features;
CREATE TRIGGER bump_config_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tollgate.features
  FOR EACH STATEMENT EXECUTE FUNCTION tollgate._bump_config_version();
DROP TRIGGER IF EXISTS bump_config_version ON tollgate.limits;
CREATE TRIGGER bump_config_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tollgate.limits
  FOR EACH STATEMENT EXECUTE FUNCTION tollgate._bump_config_version();
