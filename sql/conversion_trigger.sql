-- The attribution window: how long after an upgrade prompt is sent a
-- conversion is still attributed to it. Setting 'attribution_window' (an
-- interval, written by tollgate apply from conversions.attribution_window);
-- 30 days when unset.
CREATE OR REPLACE FUNCTION tollgate._attribution_window()
RETURNS interval
LANGUAGE sql STABLE
AS $$
  SELECT coalesce((SELECT s.value::interval FROM tollgate.settings s WHERE s.key = 'attribution_window'),
                  interval '30 days')
$$;

-- Records a change of a customer's plan in tollgate.plan_changes, in the
-- transaction that made it. customers.plan NULL is the default (free) plan;
-- anything else is an entitled paid plan (tollgate._refresh_customer).
--
-- A conversion (default -> paid) whose Stripe Checkout Session came from an
-- upgrade-link click is attributed to that click exactly ("clicked"): the
-- latest completed click of the customer within the attribution window that
-- no conversion has yet, with its prompt (email, event) and variant
-- (sql/upgrade_links.sql). Otherwise it is attributed to the latest upgrade
-- prompt sent to the customer within the attribution window before it: an
-- email with status 'sent', for a limit event the customer hit on the plan
-- they converted from. Emails that were skipped, failed or given up prompted
-- nobody. No such prompt: the conversion is organic.
--
-- Several plan changes of one customer in one transaction are one
-- transition: the row already written by this transaction is replaced, so a
-- plan removed and replaced at once is one change (or nothing), not a churn
-- and a conversion. Only real changes reach here (the trigger's WHEN), and
-- _refresh_customer writes the plan only when it differs, so replayed
-- webhooks write nothing.
CREATE OR REPLACE FUNCTION tollgate._customers_plan_changed()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
  v_default text;
  v_from text;
  v_from_paid boolean := OLD.plan IS NOT NULL;
  v_to text;
  v_to_paid boolean := NEW.plan IS NOT NULL;
  v_kind text;
  v_folded_from text;
  v_folded_paid boolean;
  v_email bigint;
  v_event bigint;
  v_feature text;
  v_prompted timestamptz;
  v_click tollgate.link_clicks;
  v_variant text;
BEGIN
  SELECT p.plan INTO v_default FROM tollgate.plans p WHERE p.is_default;
  v_default := coalesce(v_default, 'default');
  v_from := coalesce(OLD.plan, v_default);
  v_to := coalesce(NEW.plan, v_default);

  DELETE FROM tollgate.plan_changes pc
   WHERE pc.customer = NEW.customer AND pc.xact = pg_catalog.pg_current_xact_id()
  RETURNING pc.from_plan, pc.kind <> 'conversion' INTO v_folded_from, v_folded_paid;
  IF FOUND THEN
    v_from := v_folded_from;
    v_from_paid := v_folded_paid;
  END IF;
  IF v_from_paid = v_to_paid AND v_from = v_to THEN
    RETURN NULL; -- back where the transaction started
  END IF;

  v_kind := CASE WHEN NOT v_from_paid THEN 'conversion' WHEN NOT v_to_paid THEN 'churn' ELSE 'change' END;
  IF v_kind = 'conversion' THEN
    SELECT k.* INTO v_click
      FROM tollgate.link_clicks k
     WHERE k.customer = NEW.customer
       AND k.completed_at IS NOT NULL
       AND k.clicked_at >= now() - tollgate._attribution_window()
       AND k.clicked_at <= now()
       AND NOT EXISTS (SELECT FROM tollgate.plan_changes p WHERE p.customer = k.customer AND p.click_id = k.id)
     ORDER BY k.completed_at DESC, k.id DESC
     LIMIT 1;
    IF v_click.id IS NOT NULL THEN
      v_email := v_click.email_id;
      v_event := v_click.event_id;
      v_feature := v_click.feature;
      v_prompted := tollgate._click_prompted_at(v_click);
      v_variant := v_click.variant;
    ELSE
      SELECT m.id, m.event_id, m.feature, m.sent_at, m.variant
        INTO v_email, v_event, v_feature, v_prompted, v_variant
        FROM tollgate.emails m
        -- (the customer too: on a Citus cluster the join stays on the customer's worker)
        JOIN tollgate.events e ON e.customer = m.customer AND e.id = m.event_id
       WHERE m.customer = NEW.customer
         AND m.status = 'sent'
         AND m.sent_at >= now() - tollgate._attribution_window()
         AND m.sent_at <= now()
         AND e.plan = v_from
       ORDER BY m.sent_at DESC, m.id DESC
       LIMIT 1;
    END IF;
  END IF;
  INSERT INTO tollgate.plan_changes
    (customer, from_plan, to_plan, kind, email_id, event_id, feature, prompted_at, click_id, variant)
  VALUES (NEW.customer, v_from, v_to, v_kind, v_email, v_event, v_feature, v_prompted, v_click.id, v_variant);
  RETURN NULL;
END
$$;

-- Through EXECUTE, as in config_version.sql: on a Citus cluster customers is
-- distributed, and Citus sends trigger DDL to the workers as the client's text.
DO $$
BEGIN
  EXECUTE 'DROP TRIGGER IF EXISTS customers_plan_changed ON tollgate.customers';
  EXECUTE 'CREATE TRIGGER customers_plan_changed AFTER UPDATE OF plan ON tollgate.customers '
          'FOR EACH ROW WHEN (OLD.plan IS DISTINCT FROM NEW.plan) '
          'EXECUTE FUNCTION tollgate._customers_plan_changed()';
END
$$;
