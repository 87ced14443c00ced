CREATE OR REPLACE FUNCTION tollgate.define_route(method text, pattern text, feature text, amount bigint DEFAULT 1)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  IF $1 IS NULL OR $1 NOT IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', '*') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('method %L is not valid', $1),
      HINT = 'Use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or *.';
  END IF;
  IF $2 IS NULL OR $2 !~ '^/[^*[:space:]]*\*?$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = format('route pattern %L is not valid', $2),
      HINT = 'A path starting with /, optionally ending in * (for example /api/features/*).';
  END IF;
  IF NOT EXISTS (SELECT FROM tollgate.features f WHERE f.feature = $3) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = format('unknown feature %L', $3);
  END IF;
  IF $4 IS NULL OR $4 <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'amount must be a positive integer';
  END IF;
  INSERT INTO tollgate.routes AS r (method, pattern, feature, amount) VALUES ($1, $2, $3, $4)
  ON CONFLICT ON CONSTRAINT routes_pkey DO UPDATE SET feature = EXCLUDED.feature, amount = EXCLUDED.amount
  WHERE (r.feature, r.amount) IS DISTINCT FROM (EXCLUDED.feature, EXCLUDED.amount);
END
$$;
COMMENT ON FUNCTION tollgate.define_route(text, text, text, bigint) IS
  'Gates an HTTP route for the Django middleware (owner only): method (or *) and a path pattern with an optional '
  'trailing *, consuming amount of feature per request. Errors: TG404 unknown feature, TG422 invalid argument.';

CREATE OR REPLACE FUNCTION tollgate.remove_route(method text, pattern text)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  DELETE FROM tollgate.routes r WHERE r.method = $1 AND r.pattern = $2
$$;
COMMENT ON FUNCTION tollgate.remove_route(text, text) IS 'Stops gating a route (owner only).';

CREATE OR REPLACE FUNCTION tollgate.routes()
RETURNS TABLE (method text, pattern text, feature text, amount bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
  SELECT r.method, r.pattern, r.feature, r.amount
    FROM tollgate.routes r
   ORDER BY r.pattern LIKE '%*', length(r.pattern) DESC, r.pattern, r.method = '*', r.method
$$;
COMMENT ON FUNCTION tollgate.routes() IS
  'The gated routes, for the Django middleware, most specific first: exact paths before prefixes (a trailing *), '
  'longer prefixes before shorter ones, and a named method before *. The first route that matches a request applies.';
