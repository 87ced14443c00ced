CREATE OR REPLACE FUNCTION tollgate.refund(customer text, feature text, amount bigint DEFAULT 1)
RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  RETURN tollgate._refund($1, $2, $3, now());
END
$$;
COMMENT ON FUNCTION tollgate.refund(text, text, bigint) IS
  'Gives amount of usage back in the current window, for work that was counted but not done. A refund is bounded '
  'by what the customer used in the window: it never takes usage below 0, and never reaches a window already '
  'closed. Returns the verdict after the refund; allowed says whether one more unit would be allowed. Events '
  'already written stay: each fires once per window. Errors: TG404 unknown feature, TG422 invalid argument.';

-- refund at p_at. A customer who never used the feature gets check's verdict.
CREATE OR REPLACE FUNCTION tollgate._refund(p_customer text, p_feature text, p_amount bigint, p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  r tollgate.usage;
BEGIN
  PERFORM tollgate._check_args(p_customer, p_feature, p_amount);
  r := tollgate._usage_row(p_customer, p_feature, p_at, false);
  IF r IS NULL THEN
    RETURN tollgate._check(p_customer, p_feature, 1, p_at);
  END IF;
  IF r.window_end = '-infinity' THEN
    RETURN tollgate._refund_rolling(r, p_amount, p_at);
  END IF;
  -- an unlimited window's units may be on its shards: the row's own count
  -- then goes below 0, and the window's usage (the sum) never does
  r.used := r.used - least(p_amount, tollgate._total(r));
  r.next_mark := tollgate._next_mark(p_feature, r.used, r.quota, r.soft);
  PERFORM tollgate._save_usage(r);
  RETURN tollgate._verdict(r.quota IS NULL OR r.soft OR r.used < r.quota, p_customer, p_feature, r.plan,
                           tollgate._total(r), r.quota, r.window_end);
END
$$;
