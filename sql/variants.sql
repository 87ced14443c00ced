-- Prompt experiments: variants of a feature's upgrade prompt
-- (tollgate.prompt_variants, written by tollgate apply). A customer gets one
-- by a hash of the feature and their key, weighted, when first prompted; the
-- assignment is stored (tollgate.variant_assignments) so that changing the
-- weights or adding a variant never moves a customer already prompted. The
-- variant decides the 402's message, the email's template and message, and
-- is recorded on the event, the email and the click.

-- A number from 0 to 2^60 - 1 that depends only on the feature and the
-- customer: the first 60 bits of their sha256 (stable across PostgreSQL
-- versions, unlike hashtext).
CREATE OR REPLACE FUNCTION tollgate._variant_bucket(p_customer text, p_feature text)
RETURNS bigint
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ('x' || pg_catalog.left(pg_catalog.encode(
            pg_catalog.sha256(pg_catalog.convert_to(p_feature || E'\n' || p_customer, 'UTF8')), 'hex'), 15))::bit(60)::bigint
$$;

-- The variant the weights give a customer not assigned yet: the variants in
-- name order, each with a share of [0, total weight) as large as its weight.
CREATE OR REPLACE FUNCTION tollgate._variant_pick(p_customer text, p_feature text)
RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT w.variant
    FROM (SELECT v.variant, sum(v.weight) OVER (ORDER BY v.variant) AS upto, sum(v.weight) OVER () AS total
            FROM tollgate.prompt_variants v
           WHERE v.feature = p_feature AND v.weight > 0) w
   WHERE tollgate._variant_bucket(p_customer, p_feature) % w.total < w.upto
   ORDER BY w.upto
   LIMIT 1
$$;

-- The variant a customer sees for a feature: the one assigned at their first
-- prompt while it is still defined (whatever its weight now), else the pick
-- by the weights. NULL when the feature has no variant with a weight.
-- (PL/pgSQL, like every function that reads a per-customer table: Citus cannot
-- plan a SQL function's parameters in a query on a distributed table.)
CREATE OR REPLACE FUNCTION tollgate._variant(p_customer text, p_feature text)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM tollgate.prompt_variants v WHERE v.feature = p_feature AND v.weight > 0) THEN
    RETURN NULL;
  END IF;
  RETURN coalesce((SELECT a.variant
                     FROM tollgate.variant_assignments a
                     JOIN tollgate.prompt_variants v ON v.feature = a.feature AND v.variant = a.variant
                    WHERE a.customer = p_customer AND a.feature = p_feature),
                  tollgate._variant_pick(p_customer, p_feature));
END
$$;

-- Stores the variant a customer was prompted with (their first prompt, or the
-- first after their variant was removed).
CREATE OR REPLACE FUNCTION tollgate._assign_variant(p_customer text, p_feature text, p_variant text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  INSERT INTO tollgate.variant_assignments AS a (customer, feature, variant) VALUES (p_customer, p_feature, p_variant)
  ON CONFLICT ON CONSTRAINT variant_assignments_pkey DO UPDATE SET variant = EXCLUDED.variant, assigned_at = now()
   WHERE a.variant IS DISTINCT FROM EXCLUDED.variant;
END
$$;

CREATE OR REPLACE FUNCTION tollgate.define_variant(
  feature text, variant text, weight integer, message text DEFAULT NULL, email text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  PERFORM tollgate._check_text('feature', $1, 63);
  IF NOT EXISTS (SELECT FROM tollgate.features f WHERE f.feature = $1) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = pg_catalog.format('unknown feature %L', $1);
  END IF;
  IF $2 IS NULL OR $2 !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'variant must be a name of lower-case letters, digits and _, starting with a letter (at most 63)';
  END IF;
  IF $3 IS NULL OR $3 < 0 OR $3 > 1000000 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'weight must be a whole number from 0 to 1000000';
  END IF;
  IF pg_catalog.length($4) > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'message must be at most 10000 characters long';
  END IF;
  IF $5 !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'email must be an email template name (lower-case letters, digits and _), or NULL for the feature''s';
  END IF;
  INSERT INTO tollgate.prompt_variants AS v (feature, variant, weight, message, email) VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT ON CONSTRAINT prompt_variants_pkey DO UPDATE
    SET weight = EXCLUDED.weight, message = EXCLUDED.message, email = EXCLUDED.email;
END
$$;
COMMENT ON FUNCTION tollgate.define_variant(text, text, integer, text, text) IS
  'Creates or updates a variant of feature''s upgrade prompt (owner only; tollgate apply): its weight (the share of '
  'customers not yet assigned who get it), its message (the 402''s and the email''s; NULL = the feature''s) and its '
  'email template (NULL = the feature''s upgrade_prompt). Customers already assigned keep their variant. The '
  'variant named control is what the others are compared with. Errors: TG404 unknown feature, TG422 invalid argument.';

CREATE OR REPLACE FUNCTION tollgate.remove_variant(feature text, variant text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  DELETE FROM tollgate.prompt_variants v WHERE v.feature = $1 AND v.variant = $2;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION tollgate.remove_variant(text, text) IS
  'Removes a variant of feature''s upgrade prompt (owner only). Its customers are assigned again (by the weights '
  'left) at their next prompt; their events, emails and clicks keep it. Returns false when there was none.';

CREATE OR REPLACE FUNCTION tollgate.experiments()
RETURNS TABLE (feature text, variant text, weight integer, message text, email text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  SELECT v.feature, v.variant, v.weight, v.message, v.email
    FROM tollgate.prompt_variants v
   ORDER BY v.feature, v.variant <> 'control', v.variant
$$;
COMMENT ON FUNCTION tollgate.experiments() IS
  'Sidecar: the variants of every feature''s upgrade prompt, control first: weight, message and email template '
  '(NULL = the feature''s).';

GRANT EXECUTE ON FUNCTION tollgate.experiments() TO tollgate_sidecar;
