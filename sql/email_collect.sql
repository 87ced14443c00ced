CREATE OR REPLACE FUNCTION tollgate.outbox_collect(max_events integer DEFAULT 500)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_n integer;
  v_trial_prompt text;
BEGIN
  IF max_events IS NULL OR max_events < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = format('max_events must be a positive integer, not %s', coalesce(max_events::text, 'NULL'));
  END IF;
  SELECT nullif(st.value, '') INTO v_trial_prompt FROM tollgate.settings st WHERE st.key = 'trial_prompt';
  -- Replicas collecting at once take disjoint events (SKIP LOCKED); the
  -- unique key of emails keeps one email per customer, feature and window
  -- even for events of one window collected by different replicas.
  WITH picked AS (
    SELECT e.id
      FROM tollgate.events e
     WHERE e.processed_at IS NULL
     ORDER BY e.id
     LIMIT max_events
       FOR UPDATE SKIP LOCKED
  ), done AS (
    UPDATE tollgate.events e SET processed_at = pg_catalog.now()
      FROM picked
     WHERE e.id = picked.id
    RETURNING e.id, e.kind, e.customer, e.feature, e.period_start, e.variant
  ), emails AS (
    -- a prompt variant's own template, else the feature's
    INSERT INTO tollgate.emails AS m (event_id, customer, feature, period_start, template, to_email, status, last_error, variant)
    SELECT d.id, d.customer, d.feature, d.period_start,
           CASE d.kind WHEN 'trial_will_end' THEN v_trial_prompt ELSE coalesce(pv.email, f.upgrade_prompt) END, c.email,
           CASE WHEN c.email IS NULL OR c.email_opt_out THEN 'skipped' ELSE 'pending' END,
           CASE WHEN c.email IS NULL THEN 'the customer has no email address'
                WHEN c.email_opt_out THEN 'the customer opted out of upgrade prompts' END,
           d.variant
      FROM done d
      LEFT JOIN tollgate.features f ON f.feature = d.feature AND d.kind = 'limit_reached'
      LEFT JOIN tollgate.prompt_variants pv ON pv.feature = d.feature AND pv.variant = d.variant AND d.kind = 'limit_reached'
      LEFT JOIN tollgate.customers c ON c.customer = d.customer
     WHERE (d.kind = 'limit_reached' AND coalesce(pv.email, f.upgrade_prompt) IS NOT NULL)
        OR (d.kind = 'trial_will_end' AND v_trial_prompt IS NOT NULL)
     ORDER BY d.id
    ON CONFLICT (customer, feature, period_start) DO NOTHING
  )
  SELECT count(*) INTO v_n FROM done;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION tollgate.outbox_collect(integer) IS
  'Turns up to max_events unprocessed events into outbox rows and returns how many events it processed (call it '
  'until it returns less than max_events). A limit_reached event of a feature with an upgrade prompt (or whose '
  'prompt variant names an email template) becomes one pending email of that template, or a skipped one when the customer has no email address or opted out; at most one per customer, '
  'feature and window. A trial_will_end event becomes the trial prompt (the template of the setting trial_prompt), '
  'the same way, once per trial. Threshold events, features without a prompt and trial events while trial_prompt '
  'is not set are marked processed with no email. Safe to run from any number of replicas at once. Errors: TG422 '
  'for a max_events below 1.';

GRANT EXECUTE ON FUNCTION tollgate.outbox_collect(integer) TO tollgate_sidecar;
