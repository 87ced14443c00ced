-- consume and require with an idempotency key, for callers outside one
-- transaction (task queues retrying, webhooks redelivered, mobile clients):
-- the first call with a key for a customer counts and its verdict is kept;
-- a later call with that key returns the kept verdict and counts nothing.
-- Two calls at once: the second's insert of the key waits for the first's
-- transaction (the key is unique); if the first rolled back, the second
-- counts. Keys are kept at least 24 hours (prune_idempotency_keys).
CREATE OR REPLACE FUNCTION tollgate._consume_once(
  p_customer text, p_feature text, p_amount bigint, p_key text, p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  v tollgate.verdict;
  k tollgate.idempotency_keys;
BEGIN
  PERFORM tollgate._check_args(p_customer, p_feature, p_amount);
  PERFORM tollgate._check_text('idempotency_key', p_key, 255);
  INSERT INTO tollgate.idempotency_keys AS i (customer, key, feature, amount, created_at)
  VALUES (p_customer, p_key, p_feature, p_amount, p_at)
  ON CONFLICT (customer, key) DO NOTHING;
  IF FOUND THEN
    v := tollgate._consume(p_customer, p_feature, p_amount, p_at);
    UPDATE tollgate.idempotency_keys i SET verdict = pg_catalog.to_jsonb(v)
     WHERE i.customer = p_customer AND i.key = p_key;
    RETURN v;
  END IF;
  SELECT * INTO k FROM tollgate.idempotency_keys i WHERE i.customer = p_customer AND i.key = p_key;
  IF k.feature <> p_feature OR k.amount <> p_amount THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('idempotency key %L was used for %s of %s', p_key, k.amount, k.feature),
      HINT = 'Use a new key for a different call.';
  END IF;
  RETURN pg_catalog.jsonb_populate_record(NULL::tollgate.verdict, k.verdict);
END
$$;

CREATE OR REPLACE FUNCTION tollgate.consume(customer text, feature text, amount bigint, idempotency_key text)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN tollgate._consume_once($1, $2, $3, $4, now());
END
$$;
COMMENT ON FUNCTION tollgate.consume(text, text, bigint, text) IS
  'consume with an idempotency key: the first call with the key for customer counts; a later one (also while '
  'the first is in flight: it waits for the first''s transaction) returns the first''s verdict and counts '
  'nothing; if the first rolled back, the later one counts. Keys are kept at least 24 hours. Errors: as consume, '
  'and TG422 for a key over 255 characters or reused with another feature or amount.';

CREATE OR REPLACE FUNCTION tollgate.require(customer text, feature text, amount bigint, idempotency_key text)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v tollgate.verdict := tollgate._consume_once($1, $2, $3, $4, now());
BEGIN
  IF NOT v.allowed THEN
    PERFORM tollgate._raise_quota_exceeded(v, $3);
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION tollgate.require(text, text, bigint, text) IS
  'require with an idempotency key (see consume with a key). A blocked call raises TG402, which rolls the key '
  'back with the transaction: a retry is decided again.';

CREATE OR REPLACE FUNCTION tollgate.prune_idempotency_keys(older_than interval DEFAULT interval '24 hours')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_n bigint;
BEGIN
  IF $1 IS NULL OR $1 < interval '24 hours' OR $1 > interval '100 years' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'older_than must be from 24 hours to 100 years: keys are kept at least 24 hours';
  END IF;
  DELETE FROM tollgate.idempotency_keys i WHERE i.created_at < now() - $1;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION tollgate.prune_idempotency_keys(interval) IS
  'Deletes idempotency keys older than older_than (at least and by default 24 hours); the sidecar runs it '
  'hourly. Returns how many it deleted. Errors: TG422 for less than 24 hours.';
