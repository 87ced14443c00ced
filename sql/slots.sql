-- A hot customer's slots (the table usage_slots, in migrations/002_schema.sql).
--
-- Every transaction that counts on a usage row holds the row's lock until its
-- commit record is flushed, so the transactions of one customer would commit
-- one WAL flush at a time. When a call waited more than 5 ms for a row that
-- another transaction changed meanwhile, the row becomes "slotted" until its
-- window ends or its contention is over (_gate, _unslot): then calls count
-- on one of 16 slots, each within its lease, when a free one has room, and
-- the commits of the transactions on different slots share a flush (group
-- commit). The holder of the row counts on the row, and leases to the slots
-- (_gate_slotted).
--
-- Exactness: a lease is granted from the row under the row's lock, and
-- usage.used + usage.leased never passes the row's stop (the quota, and the
-- usage just below the next event mark), so slots never cross a mark or the
-- quota. A call that would goes to the full path, which takes the row, waits
-- for the slots in use and folds them into the row (_settle): every event and
-- every block is then decided on the exact total, as without slots.
--
-- Deadlock freedom: locks of one key are taken in the order row, then slots.
-- Only the holder of the row waits for slots (_settle); everyone else takes a
-- slot with SKIP LOCKED, gives back a slot it could not count on (a
-- subtransaction), and marks the slots it counted on (holder = its
-- transaction id). A transaction that counted on a slot waits neither for the
-- row nor, through the full path, for slots: another transaction on a slot
-- may be waiting for it on something else. When it would have to (another
-- call of the same key in the same transaction, with no slot room, or one
-- that needs the full path), the call is answered from what it sees
-- (_slot_holder_call). A REPEATABLE READ transaction that holds the row may
-- get a serialization failure (40001) when it settles slots others counted
-- on after its snapshot.

-- The usage counted on the slots of one window.
CREATE OR REPLACE FUNCTION tollgate._slot_used(p_customer text, p_feature text, p_window_start timestamptz)
RETURNS bigint
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(sum(s.used), 0)::bigint FROM tollgate.usage_slots s
   WHERE s.customer = p_customer AND s.feature = p_feature AND s.window_start = p_window_start
$$;

-- The most a usage row may count (used + leased) without an event or a
-- block: the quota when hard, and one below the next event mark.
CREATE OR REPLACE FUNCTION tollgate._stop(p_quota bigint, p_soft boolean, p_next bigint)
RETURNS bigint
LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN p_soft OR p_quota IS NULL THEN coalesce(p_next - 1, 9223372036854775807)
              ELSE least(p_quota, coalesce(p_next - 1, p_quota)) END
$$;

-- Folds the slots of a usage row into it: waits for the transactions that
-- hold slots, returns used plus what the slots of the row's window counted
-- (never below 0), books slots of an older window into usage_windows, and
-- empties every slot (the caller sets the row's leased to 0). The caller
-- holds the row.
CREATE OR REPLACE FUNCTION tollgate._settle(
  p_customer text, p_feature text, p_row_start timestamptz, p_used bigint)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
  v_used bigint := p_used;
  r record;
BEGIN
  FOR r IN SELECT s.slot, s.used, s.window_start, s.window_end
             FROM tollgate.usage_slots s
            WHERE s.customer = p_customer AND s.feature = p_feature
            ORDER BY s.slot
              FOR NO KEY UPDATE
  LOOP
    IF r.used = 0 THEN
      NULL;
    ELSIF r.window_start = p_row_start THEN
      v_used := v_used + r.used;
    ELSE
      INSERT INTO tollgate.usage_windows AS w (customer, feature, window_start, window_end, used)
      VALUES (p_customer, p_feature, r.window_start, nullif(r.window_end, 'infinity'), greatest(r.used, 0))
      ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = w.used + EXCLUDED.used;
    END IF;
  END LOOP;
  UPDATE tollgate.usage_slots s SET used = 0, lease = 0
   WHERE s.customer = p_customer AND s.feature = p_feature AND (s.used <> 0 OR s.lease <> 0);
  RETURN greatest(v_used, 0);
END
$$;

-- Makes a slotted row plain again when its contention is over: if the row
-- and every slot can be taken without waiting, folds the slots into the row
-- and clears slotted. Otherwise gives every lock it took back (a
-- subtransaction) and leaves the row slotted. Called now and then from a
-- slot call; never waits, so a slot's holder may call it.
CREATE OR REPLACE FUNCTION tollgate._unslot(p_customer text, p_feature text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  v_start timestamptz;
  v_used bigint;
  v_slots integer;
  v_locked integer;
BEGIN
  SELECT count(*) INTO v_slots FROM tollgate.usage_slots s
   WHERE s.customer = p_customer AND s.feature = p_feature;
  BEGIN
    SELECT u.window_start, u.used INTO v_start, v_used FROM tollgate.usage u
     WHERE u.customer = p_customer AND u.feature = p_feature AND u.slotted
       FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'TGSKP', MESSAGE = 'the row is taken';
    END IF;
    PERFORM FROM tollgate.usage_slots s
      WHERE s.customer = p_customer AND s.feature = p_feature
        FOR NO KEY UPDATE SKIP LOCKED;
    GET DIAGNOSTICS v_locked = ROW_COUNT;
    IF v_locked < v_slots THEN
      RAISE EXCEPTION USING ERRCODE = 'TGSKP', MESSAGE = 'a slot is taken';
    END IF;
  EXCEPTION WHEN SQLSTATE 'TGSKP' THEN
    RETURN;
  END;
  -- every slot is this transaction's now: _settle does not wait
  v_used := tollgate._settle(p_customer, p_feature, v_start, v_used);
  UPDATE tollgate.usage u SET used = v_used, leased = 0, slotted = false
   WHERE u.customer = p_customer AND u.feature = p_feature;
END
$$;

-- A call of a transaction that counted on a slot of this key, when it would
-- have to wait for the row or take the full path (which waits for slots):
-- answered without waiting, from what this transaction sees. p_row says
-- whether it holds the row. A refund goes back on its slot (never below 0
-- there), the rest on the row if it holds it. A consume under a soft limit
-- or without a limit is allowed and counted on its slot past the lease (a
-- mark it passes fires at the next full path, _gate); a consume under a hard
-- limit, and a note, is refused without counting and without an event: the
-- same call after this transaction commits is decided exactly.
CREATE OR REPLACE FUNCTION tollgate._slot_holder_call(
  p_customer text, p_feature text, p_amount bigint, p_mode text, p_at timestamptz, p_row boolean)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  v_used bigint;
  v_quota bigint;
  v_soft boolean;
  v_plan text;
  v_end timestamptz;
  v_message text;
  v_slot integer;
  v_take bigint;
  v_left bigint;
BEGIN
  SELECT min(s.slot) INTO v_slot FROM tollgate.usage_slots s
   WHERE s.customer = p_customer AND s.feature = p_feature AND s.holder = pg_current_xact_id_if_assigned();
  IF p_mode = 'refund' THEN
    SELECT least(p_amount, greatest(s.used, 0)) INTO v_take FROM tollgate.usage_slots s
     WHERE s.customer = p_customer AND s.feature = p_feature AND s.slot = v_slot;
    UPDATE tollgate.usage_slots s SET used = s.used - v_take
     WHERE s.customer = p_customer AND s.feature = p_feature AND s.slot = v_slot;
    v_left := p_amount - v_take;
    IF v_left > 0 AND p_row THEN
      UPDATE tollgate.usage u SET used = u.used - least(v_left, u.used)
       WHERE u.customer = p_customer AND u.feature = p_feature;
    END IF;
  ELSIF p_mode = 'consume' THEN
    SELECT u.quota IS NULL OR u.soft INTO v_soft FROM tollgate.usage u
     WHERE u.customer = p_customer AND u.feature = p_feature;
    IF v_soft THEN
      UPDATE tollgate.usage_slots s SET used = s.used + p_amount
       WHERE s.customer = p_customer AND s.feature = p_feature AND s.slot = v_slot;
    END IF;
  END IF;
  SELECT u.used + tollgate._slot_used(p_customer, p_feature, u.window_start), u.quota, u.soft, u.plan,
         u.window_end, f.message
    INTO v_used, v_quota, v_soft, v_plan, v_end, v_message
    FROM tollgate.usage u JOIN tollgate.features f ON f.feature = u.feature
   WHERE u.customer = p_customer AND u.feature = p_feature;
  IF p_mode = 'refund' THEN
    RETURN tollgate._verdict(v_soft OR v_quota IS NULL OR v_used < v_quota, p_customer, p_feature, v_plan,
                             v_used, v_quota, v_end, CASE WHEN v_used > v_quota THEN v_message END);
  END IF;
  IF p_mode = 'consume' AND (v_soft OR v_quota IS NULL) THEN
    RETURN tollgate._verdict(true, p_customer, p_feature, v_plan, v_used, v_quota, v_end,
                             CASE WHEN v_used > v_quota THEN v_message END);
  END IF;
  RETURN tollgate._verdict(false, p_customer, p_feature, v_plan, v_used, v_quota, v_end, v_message);
END
$$;

-- consume, refund and note on a slotted usage row, after the one-statement
-- paths of _gate missed. Returns the verdict, or NULL for the full path; it
-- returns NULL only when the full path may wait for the row (this
-- transaction holds it already, or holds no slot of this key).
CREATE OR REPLACE FUNCTION tollgate._gate_slotted(
  p_customer text,
  p_feature text,
  p_amount bigint,
  p_mode text,
  p_at timestamptz)
RETURNS tollgate.verdict
LANGUAGE plpgsql
AS $$
DECLARE
  v_used bigint;
  v_leased bigint;
  v_quota bigint;
  v_soft boolean;
  v_plan text;
  v_start timestamptz;
  v_end timestamptz;
  v_version bigint;
  v_epoch bigint;
  v_stop bigint;
  v_chunk bigint;
  v_granted bigint;
  v_added bigint;
  v_message text;
  v_holder boolean;
  v_got boolean;
  v_try_unslot boolean;
BEGIN
  IF p_mode = 'consume' THEN
    -- A free slot with room, this backend's own first. The try runs in a
    -- subtransaction: PostgreSQL keeps a row lock even on a row that, changed
    -- by another transaction meanwhile, no longer qualifies, and a slot lock
    -- held but not counted on would make _settle wait for this transaction.
    BEGIN
      UPDATE tollgate.usage_slots s SET used = s.used + p_amount, holder = pg_current_xact_id()
        FROM tollgate.usage u
       WHERE s.customer = p_customer AND s.feature = p_feature
         AND s.used + p_amount <= s.lease AND s.window_end > p_at
         AND s.config_version = (SELECT cs.version FROM tollgate.config_state cs)
         AND s.plan_epoch = (SELECT c.plan_epoch FROM tollgate.customers c WHERE c.customer = p_customer)
         AND u.customer = p_customer AND u.feature = p_feature
         AND s.slot = (
           SELECT f.slot FROM tollgate.usage_slots f
            WHERE f.customer = p_customer AND f.feature = p_feature
              AND f.used + p_amount <= f.lease AND f.window_end > p_at
              AND f.config_version = (SELECT cs.version FROM tollgate.config_state cs)
            ORDER BY (f.slot + 16 - pg_backend_pid() % 16) % 16
            LIMIT 1
              FOR NO KEY UPDATE SKIP LOCKED)
      RETURNING u.used + s.used + (SELECT coalesce(sum(x.used), 0) FROM tollgate.usage_slots x
                                    WHERE x.customer = p_customer AND x.feature = p_feature
                                      AND x.window_start = s.window_start AND x.slot <> s.slot),
                u.quota, u.plan, u.window_end, s.used % 256 < p_amount
        INTO v_used, v_quota, v_plan, v_end, v_try_unslot;
      IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'TGSKP', MESSAGE = 'no free slot with room';
      END IF;
    EXCEPTION WHEN SQLSTATE 'TGSKP' THEN
      v_used := NULL;
    END;
    IF v_used IS NOT NULL THEN
      IF v_try_unslot THEN
        -- every 256 units of a slot: is the contention over?
        PERFORM tollgate._unslot(p_customer, p_feature);
      END IF;
      IF v_used > v_quota THEN
        SELECT f.message INTO v_message FROM tollgate.features f WHERE f.feature = p_feature;
      END IF;
      RETURN tollgate._verdict(true, p_customer, p_feature, v_plan, v_used, v_quota, v_end, v_message);
    END IF;
  END IF;

  -- Whether this transaction counted on a slot of this key: then it waits
  -- neither for the row nor, through the full path, for slots (another
  -- slot's holder may be waiting for this transaction on something else).
  v_holder := EXISTS (SELECT FROM tollgate.usage_slots s
                       WHERE s.customer = p_customer AND s.feature = p_feature
                         AND s.holder = pg_current_xact_id_if_assigned());
  -- the row, unless another transaction holds it
  PERFORM FROM tollgate.usage u
    WHERE u.customer = p_customer AND u.feature = p_feature
      FOR NO KEY UPDATE SKIP LOCKED;
  v_got := FOUND;
  IF v_holder AND NOT (v_got AND p_mode = 'consume') THEN
    RETURN tollgate._slot_holder_call(p_customer, p_feature, p_amount, p_mode, p_at, v_got);
  END IF;
  IF NOT v_got THEN
    IF p_mode <> 'consume' THEN
      RETURN NULL; -- the full path waits for the row
    END IF;
    -- wait for the row (a call blocked already was answered by _gate's read)
    PERFORM FROM tollgate.usage u
      WHERE u.customer = p_customer AND u.feature = p_feature
        FOR NO KEY UPDATE;
  ELSIF p_mode <> 'consume' THEN
    RETURN NULL;
  END IF;

  -- This transaction holds the row: count on it if the row is current and
  -- used + leased stays within its stop, else the full path.
  UPDATE tollgate.usage u SET used = u.used + p_amount
    FROM tollgate.customers c
   WHERE u.customer = p_customer AND u.feature = p_feature AND u.window_end > p_at AND u.slotted
     AND c.customer = p_customer AND u.plan_epoch = c.plan_epoch
     AND u.config_version = (SELECT cs.version FROM tollgate.config_state cs)
     AND u.used + u.leased + p_amount <= tollgate._stop(u.quota, u.soft, u.next_mark)
  RETURNING u.used, u.leased, u.quota, u.soft, u.plan, u.window_start, u.window_end, u.config_version,
            u.plan_epoch, tollgate._stop(u.quota, u.soft, u.next_mark)
    INTO v_used, v_leased, v_quota, v_soft, v_plan, v_start, v_end, v_version, v_epoch, v_stop;
  IF NOT FOUND THEN
    IF v_holder THEN
      RETURN tollgate._slot_holder_call(p_customer, p_feature, p_amount, p_mode, p_at, true);
    END IF;
    RETURN NULL; -- the full path
  END IF;

  -- Lease to the free slots: top each up to a chunk of what is left (half
  -- of it over the 16 slots at most), creating the missing ones.
  v_chunk := least((v_stop - v_used - v_leased) / 32, 1000000000);
  IF v_chunk > 0 THEN
    WITH free AS (
      SELECT f.slot, f.lease AS old_lease
        FROM tollgate.usage_slots f
       WHERE f.customer = p_customer AND f.feature = p_feature AND f.lease - f.used <= v_chunk / 2
         FOR NO KEY UPDATE SKIP LOCKED),
    topped AS (
      UPDATE tollgate.usage_slots s
         SET lease = s.used + v_chunk, window_start = v_start, window_end = v_end,
             config_version = v_version, plan_epoch = v_epoch
        FROM free
       WHERE s.customer = p_customer AND s.feature = p_feature AND s.slot = free.slot
         AND s.lease - s.used <= v_chunk / 2
         AND (s.used = 0 AND s.lease = 0
              OR s.window_start = v_start AND s.config_version = v_version AND s.plan_epoch = v_epoch)
      RETURNING s.lease - free.old_lease AS units)
    SELECT coalesce(sum(t.units), 0) INTO v_granted FROM topped t;
    INSERT INTO tollgate.usage_slots (customer, feature, slot, window_start, window_end, config_version,
                                      plan_epoch, lease)
    SELECT p_customer, p_feature, n, v_start, v_end, v_version, v_epoch, v_chunk
      FROM generate_series(0, 15) n
     WHERE NOT EXISTS (SELECT FROM tollgate.usage_slots x
                        WHERE x.customer = p_customer AND x.feature = p_feature AND x.slot = n);
    GET DIAGNOSTICS v_added = ROW_COUNT;
    v_granted := v_granted + v_added * v_chunk;
    IF v_granted > 0 THEN
      UPDATE tollgate.usage u SET leased = u.leased + v_granted
       WHERE u.customer = p_customer AND u.feature = p_feature;
    END IF;
  END IF;

  v_used := v_used + tollgate._slot_used(p_customer, p_feature, v_start);
  IF v_used > v_quota THEN
    SELECT f.message INTO v_message FROM tollgate.features f WHERE f.feature = p_feature;
  END IF;
  RETURN tollgate._verdict(true, p_customer, p_feature, v_plan, v_used, v_quota, v_end, v_message);
END
$$;
