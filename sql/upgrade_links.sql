-- Signed upgrade links: <public_url>/upgrade/<token>, served by the sidecar
-- (docs/conversions.md). A token is
--
--   base64url(payload) "." base64url(HMAC-SHA256(key, payload))
--   payload = "1|" expires "|" event "|" email "|" variant "|" feature "|" customer
--
-- (expires in Unix seconds; event and email ids, and the variant, empty when
-- none; the customer last, so it may hold any character). The key is the one
-- the sidecar derives from TOLLGATE_LINK_SECRET and writes here at start-up
-- (configure_upgrade_links); the sidecar verifies tokens with it, or with the
-- one of TOLLGATE_LINK_SECRET_PREVIOUS while a secret is rotated. SQL mints
-- (upgrade_link) so that the app's 402 carries a link with no sidecar round
-- trip; the key stays in tollgate.link_keys, which the app's role cannot read.
-- HMAC is written with the built-in sha256(bytea): no pgcrypto.

-- base64url without padding (RFC 4648, section 5).
CREATE OR REPLACE FUNCTION tollgate._b64url(p bytea)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT pg_catalog.translate(pg_catalog.encode(p, 'base64'), E'+/=\n', '-_')
$$;

-- The token of a link, signed with the stored pads.
CREATE OR REPLACE FUNCTION tollgate._link_token(
  k tollgate.link_keys, p_customer text, p_feature text, p_event bigint, p_email bigint, p_variant text, p_expires timestamptz)
RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT tollgate._b64url(m.payload) || '.'
         || tollgate._b64url(pg_catalog.sha256(k.outer_pad || pg_catalog.sha256(k.inner_pad || m.payload)))
    FROM (SELECT pg_catalog.convert_to(
                   '1|' || pg_catalog.floor(EXTRACT(epoch FROM p_expires))::bigint
                   || '|' || coalesce(p_event::text, '') || '|' || coalesce(p_email::text, '')
                   || '|' || coalesce(p_variant, '') || '|' || p_feature || '|' || p_customer, 'UTF8') AS payload) m
$$;

CREATE OR REPLACE FUNCTION tollgate.configure_upgrade_links(key text, base_url text, ttl interval)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  v_key bytea;
  v_inner bytea;
  v_outer bytea;
  v_url text := pg_catalog.rtrim($2, '/');
BEGIN
  IF $1 IS NULL OR $1 !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'key must be 32 bytes as 64 lower-case hex digits',
      HINT = 'The sidecar derives it from TOLLGATE_LINK_SECRET.';
  END IF;
  IF $2 IS NULL OR pg_catalog.length($2) > 1000 OR $2 !~ '^https?://[^\s/?#]+(/[^\s?#]*)?$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422',
      MESSAGE = 'base_url must be an absolute http(s) URL of at most 1000 characters, without query or fragment';
  END IF;
  IF $3 IS NULL OR $3 < interval '1 minute' OR $3 > interval '366 days' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'ttl must be from 1 minute to 366 days';
  END IF;
  -- HMAC-SHA256's pads: the key, zero-padded to sha256's 64-byte block, XOR 0x36 and XOR 0x5c
  v_key := pg_catalog.decode($1 || pg_catalog.repeat('00', 32), 'hex');
  v_inner := v_key;
  v_outer := v_key;
  FOR i IN 0..63 LOOP
    v_inner := pg_catalog.set_byte(v_inner, i, pg_catalog.get_byte(v_key, i) # 54);
    v_outer := pg_catalog.set_byte(v_outer, i, pg_catalog.get_byte(v_key, i) # 92);
  END LOOP;
  INSERT INTO tollgate.link_keys AS k (inner_pad, outer_pad, base_url, ttl) VALUES (v_inner, v_outer, v_url, $3)
  ON CONFLICT ON CONSTRAINT link_keys_pkey DO UPDATE
    SET inner_pad = EXCLUDED.inner_pad, outer_pad = EXCLUDED.outer_pad, base_url = EXCLUDED.base_url,
        ttl = EXCLUDED.ttl, set_at = now();
END
$$;
COMMENT ON FUNCTION tollgate.configure_upgrade_links(text, text, interval) IS
  'Sidecar, at start-up: turns upgrade links on. key: the 32-byte link key (hex) the sidecar derives from '
  'TOLLGATE_LINK_SECRET; base_url: the sidecar''s public URL (links are base_url/upgrade/<token>); ttl: how long a '
  'link minted from now on is valid. Nobody but the owner can read them back. Errors: TG422 invalid argument.';

CREATE OR REPLACE FUNCTION tollgate.disable_upgrade_links()
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  DELETE FROM tollgate.link_keys;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION tollgate.disable_upgrade_links() IS
  'Sidecar, at start-up without TOLLGATE_LINK_SECRET: turns upgrade links off (upgrade_link answers NULL). Returns '
  'whether they were on.';

CREATE OR REPLACE FUNCTION tollgate.upgrade_link(customer text, feature text)
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  k tollgate.link_keys;
  v_event bigint;
  v_variant text;
BEGIN
  PERFORM tollgate._check_text('customer', $1, 255);
  PERFORM tollgate._check_text('feature', $2, 63);
  IF NOT EXISTS (SELECT FROM tollgate.features f WHERE f.feature = $2) THEN
    RAISE EXCEPTION USING ERRCODE = 'TG404', MESSAGE = pg_catalog.format('unknown feature %L', $2);
  END IF;
  SELECT * INTO k FROM tollgate.link_keys;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  -- the prompt it answers: the customer's latest limit_reached event of the feature, and its variant
  SELECT e.id, e.variant INTO v_event, v_variant
    FROM tollgate.events e
   WHERE e.customer = $1 AND e.feature = $2 AND e.kind = 'limit_reached'
   ORDER BY e.id DESC
   LIMIT 1;
  v_variant := coalesce(v_variant, tollgate._variant($1, $2));
  RETURN k.base_url || '/upgrade/' || tollgate._link_token(k, $1, $2, v_event, NULL, v_variant, now() + k.ttl);
END
$$;
COMMENT ON FUNCTION tollgate.upgrade_link(text, text) IS
  'The signed upgrade link for customer and feature (<public_url>/upgrade/<token>): the sidecar opens Stripe '
  'Checkout for the feature''s upgrade plan on it, and records the click, with the customer''s latest limit_reached '
  'event of the feature and its prompt variant. NULL when upgrade links are off (no TOLLGATE_LINK_SECRET): show '
  'the static upgrade_url then. Only blocked or over-quota answers should ask for it: it costs two sha256(). '
  'Errors: TG404 unknown feature, TG422 invalid argument.';

-- When the prompt a click answered was shown: its email's sending, else its
-- event (a 402 is shown when the limit is hit), else the click.
CREATE OR REPLACE FUNCTION tollgate._click_prompted_at(k tollgate.link_clicks)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  RETURN coalesce((SELECT m.sent_at FROM tollgate.emails m
                    WHERE m.customer = k.customer AND m.id = k.email_id AND m.status = 'sent'),
                  (SELECT e.created_at FROM tollgate.events e WHERE e.customer = k.customer AND e.id = k.event_id),
                  k.clicked_at);
END
$$;

CREATE OR REPLACE FUNCTION tollgate.record_click(
  customer text, feature text, event_id bigint, email_id bigint, variant text, signature text)
RETURNS TABLE (click_id bigint, repeated boolean, plan text, paying boolean, stripe_customer text, email text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
  v_customer text := $1;
  v_feature text := $2;
  v_event bigint := $3;
  v_email bigint := $4;
  v_variant text := nullif($5, '');
  v_signature text := $6;
  v_minute timestamptz := pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM now()) / 60) * 60);
  v_id bigint;
BEGIN
  PERFORM tollgate._check_text('customer', v_customer, 255);
  PERFORM tollgate._check_text('feature', v_feature, 63);
  IF v_event <= 0 OR v_email <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'event_id and email_id are positive ids, or NULL';
  END IF;
  IF v_variant !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'variant must be a variant name, or NULL';
  END IF;
  IF v_signature IS NULL OR v_signature !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'signature must be the token''s HMAC-SHA256 as 64 hex digits';
  END IF;
  -- pruned events and emails are forgotten, not an error
  v_event := (SELECT e.id FROM tollgate.events e WHERE e.customer = v_customer AND e.id = v_event);
  v_email := (SELECT m.id FROM tollgate.emails m WHERE m.customer = v_customer AND m.id = v_email);
  INSERT INTO tollgate.link_clicks AS k (token, minute, customer, feature, event_id, email_id, variant)
  VALUES (v_signature, v_minute, v_customer, v_feature, v_event, v_email, v_variant)
  ON CONFLICT ON CONSTRAINT link_clicks_token_minute_key DO NOTHING
  RETURNING k.id INTO v_id;
  repeated := v_id IS NULL;
  IF repeated THEN
    SELECT k.id INTO v_id FROM tollgate.link_clicks k
     WHERE k.customer = v_customer AND k.token = v_signature AND k.minute = v_minute;
  END IF;
  click_id := v_id;
  SELECT c.plan, c.plan IS NOT NULL, coalesce(c.stripe_customer,
           (SELECT l.stripe_customer FROM tollgate.stripe_links l WHERE l.customer = v_customer
             ORDER BY l.source = 'metadata' DESC, l.linked_at DESC LIMIT 1)), c.email
    INTO plan, paying, stripe_customer, email
    FROM tollgate.customers c WHERE c.customer = v_customer;
  paying := coalesce(paying, false);
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION tollgate.record_click(text, text, bigint, bigint, text, text) IS
  'Sidecar: records a click of a verified upgrade link (its customer, feature, event, email and variant, and its '
  'signature as hex), once per link and minute (repeated: this minute''s click was recorded already), and returns '
  'what the redirect needs: the customer''s plan (NULL = the default plan), whether they pay, their Stripe customer '
  '(the app''s link, or one found in Stripe) and email. Events and emails that were pruned are recorded as NULL. '
  'Errors: TG422 invalid argument.';

CREATE OR REPLACE FUNCTION tollgate.record_click_target(click_id bigint, target text, stripe_checkout_session text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
BEGIN
  IF $1 IS NULL OR $1 <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'click_id must be a positive id';
  END IF;
  IF $2 IS NULL OR $2 NOT IN ('checkout', 'portal', 'fallback') THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'target is checkout, portal or fallback';
  END IF;
  IF $2 = 'checkout' THEN
    PERFORM tollgate._check_stripe_id($3, 'stripe_checkout_session', 'cs', 'Checkout Session ids look like cs_test_a1b2c3');
  ELSIF $3 IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'only a checkout target has a Checkout Session';
  END IF;
  UPDATE tollgate.link_clicks k SET target = $2, checkout_session = $3
   WHERE k.id = $1
     AND NOT EXISTS (SELECT FROM tollgate.link_clicks o WHERE o.checkout_session = $3 AND o.id <> $1);
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION tollgate.record_click_target(bigint, text, text) IS
  'Sidecar: records where a click led: checkout (the Stripe Checkout Session created for it), portal (the Billing '
  'Portal: a paying customer) or fallback (the static upgrade_url). Returns false for an unknown click, or a '
  'session another click has. Errors: TG422 invalid argument.';

CREATE OR REPLACE FUNCTION tollgate.record_checkout_click(
  stripe_checkout_session text, click_id bigint, client_reference_id text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tollgate, pg_temp
AS $$
DECLARE
  k tollgate.link_clicks;
BEGIN
  PERFORM tollgate._check_stripe_id($1, 'stripe_checkout_session', 'cs', 'Checkout Session ids look like cs_test_a1b2c3');
  IF $2 <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TG422', MESSAGE = 'click_id must be a positive id, or NULL';
  END IF;
  PERFORM tollgate._check_text($3, 'client_reference_id', 255, true);
  SELECT * INTO k FROM tollgate.link_clicks c WHERE c.checkout_session = $1 FOR UPDATE;
  IF NOT FOUND AND $2 IS NOT NULL THEN
    -- the sidecar created the session but could not record it on the click: its metadata names the click
    UPDATE tollgate.link_clicks c SET checkout_session = $1, target = 'checkout'
     WHERE c.id = $2 AND c.customer = $3 AND c.checkout_session IS NULL
    RETURNING c.* INTO k;
  END IF;
  IF k.id IS NULL THEN
    RETURN NULL;
  END IF;
  UPDATE tollgate.link_clicks c SET completed_at = coalesce(c.completed_at, now())
   WHERE c.customer = k.customer AND c.id = k.id;
  -- a conversion recorded since the click, before this event (its subscription's event came first), is the
  -- click's: attributed exactly
  UPDATE tollgate.plan_changes pc
     SET click_id = k.id, email_id = k.email_id, event_id = k.event_id, feature = k.feature,
         prompted_at = tollgate._click_prompted_at(k), variant = k.variant
   WHERE pc.id = (SELECT p.id FROM tollgate.plan_changes p
                   WHERE p.customer = k.customer AND p.kind = 'conversion' AND p.changed_at >= k.clicked_at
                     AND p.click_id IS NULL
                   ORDER BY p.changed_at DESC, p.id DESC
                   LIMIT 1)
     AND NOT EXISTS (SELECT FROM tollgate.plan_changes o WHERE o.customer = k.customer AND o.click_id = k.id);
  RETURN k.id;
END
$$;
COMMENT ON FUNCTION tollgate.record_checkout_click(text, bigint, text) IS
  'Sidecar, on checkout.session.completed of a subscription-mode session: when the session was created for an '
  'upgrade-link click (found by the session, or by click_id from its metadata.tollgate_click for that '
  'client_reference_id), marks the click completed, so that the conversion it leads to is attributed to the '
  'click''s prompt and variant ("clicked"), also when the conversion was recorded first. Returns the click, or '
  'NULL. Errors: TG422 invalid argument.';

GRANT EXECUTE ON FUNCTION
  tollgate.configure_upgrade_links(text, text, interval),
  tollgate.disable_upgrade_links(),
  tollgate.record_click(text, text, bigint, bigint, text, text),
  tollgate.record_click_target(bigint, text, text),
  tollgate.record_checkout_click(text, bigint, text)
TO tollgate_sidecar;
GRANT EXECUTE ON FUNCTION tollgate.upgrade_link(text, text) TO tollgate_app;
