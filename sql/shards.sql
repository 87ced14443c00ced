-- Shards: calls of an unlimited feature count on the row of usage_shards
-- picked by the calling backend, so one busy customer's transactions do not
-- queue behind each other's commits on one row. A window's usage is
-- usage.used (usage_windows.used once closed) plus the window's shards.
-- Only the hot path of consume writes a shard; the full path folds them back.

-- The shard of the calling backend.
CREATE OR REPLACE FUNCTION tollgate._shard()
RETURNS integer
LANGUAGE sql STABLE
AS $$
  SELECT pg_catalog.pg_backend_pid() % 16
$$;

-- The committed units on the shards of one window. (This and _fold_shards
-- are PL/pgSQL, not SQL: on a Citus cluster a SQL function's parameters do
-- not reach the planner, which then asks every shard, not the customer's.)
CREATE OR REPLACE FUNCTION tollgate._shard_total(p_customer text, p_feature text, p_start timestamptz)
RETURNS numeric
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  RETURN (SELECT coalesce(sum(s.used), 0)
            FROM tollgate.usage_shards s
           WHERE s.customer = p_customer AND s.feature = p_feature AND s.window_start = p_start);
END
$$;

-- A window's usage: the row's count plus its shards (capped at the largest
-- bigint, which only a sum of shards could pass).
CREATE OR REPLACE FUNCTION tollgate._total(r tollgate.usage)
RETURNS bigint
LANGUAGE sql STABLE
AS $$
  SELECT least(r.used + tollgate._shard_total(r.customer, r.feature, r.window_start), 9223372036854775807)::bigint
$$;

-- Moves the units on a window's shards into the caller's count (the caller
-- holds the usage row): run when a feature is limited, so that its limit is
-- decided on one exact row. A shard still held by a transaction in flight is
-- skipped, not waited for (waiting could deadlock with a second call of that
-- transaction); its units are folded by the next call that takes this path.
CREATE OR REPLACE FUNCTION tollgate._fold_shards(p_customer text, p_feature text, p_start timestamptz)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
  v_folded bigint;
BEGIN
  WITH folded AS (
    DELETE FROM tollgate.usage_shards s
     WHERE s.customer = p_customer AND s.feature = p_feature AND s.window_start = p_start -- (one shard on Citus)
       AND (s.customer, s.feature, s.window_start, s.shard) IN (
             SELECT f.customer, f.feature, f.window_start, f.shard
               FROM tollgate.usage_shards f
              WHERE f.customer = p_customer AND f.feature = p_feature AND f.window_start = p_start
                FOR UPDATE SKIP LOCKED)
    RETURNING s.used)
  SELECT least(coalesce(sum(folded.used), 0), 9223372036854775807)::bigint INTO v_folded FROM folded;
  RETURN v_folded;
END
$$;
