"""Thin calls of tollgate's SQL API through Django's own database connection.

Each call is one statement on ``django.db.connections[alias]`` (the
TOLLGATE_DATABASE setting, 'default' unless set), so it joins the current
transaction: inside ``transaction.atomic`` (or with ATOMIC_REQUESTS) a rollback
gives the usage back; in autocommit it counts at once.
"""

import logging
from collections import namedtuple

from django.db import DatabaseError, connections

from .conf import tollgate_settings
from .errors import QuotaExceeded, translate

logger = logging.getLogger("tollgate_django")

_VERDICT_COLUMNS = "allowed, customer, feature, plan, used, quota, remaining, resets_at, message, granted"

# granted defaults to None: a Verdict built from the nine fields of before still works
_Verdict = namedtuple("_Verdict", _VERDICT_COLUMNS.replace(",", ""), defaults=(None,))


class Verdict(_Verdict):
    """One answer of tollgate: ``tollgate.verdict`` as a read-only tuple.

    allowed: whether the call was (or would be) allowed; plan: the customer's
    plan; used: the usage in the current window after the call (it goes past
    the quota while grants are spent); quota and remaining: the quota in force
    (the plan's, or the customer's override) and what is left of it, None when
    unlimited; resets_at: an aware datetime, None when the window never resets;
    message: the upgrade message when blocked or over; granted: the units
    granted on top of the quota that are left (grants, top-up packs), 0 when
    none, None when unlimited.
    """

    __slots__ = ()

    @property
    def unlimited(self):
        return self.quota is None

    @property
    def available(self):
        """How many more units the customer may use now: remaining plus granted; None when unlimited."""
        if self.remaining is None:
            return None
        return self.remaining + (self.granted or 0)


class Route(namedtuple("Route", "method pattern feature amount")):
    """A route TollgateMiddleware gates: method (or '*') and path pattern (an optional trailing '*')."""

    __slots__ = ()

    def matches(self, method, path):
        if self.method != "*" and self.method != method:
            return False
        if self.pattern.endswith("*"):
            return path.startswith(self.pattern[:-1])
        return path == self.pattern


def database_alias():
    """The database alias tollgate lives in: the TOLLGATE_DATABASE setting, 'default' unless set."""
    return tollgate_settings.DATABASE or "default"


def _in_autocommit(connection):
    """True when a statement on connection is a transaction of its own (no transaction is open)."""
    return not connection.in_atomic_block and connection.get_autocommit()


def _fetch(using, sql, params, async_sql=None):
    connection = connections[using or database_alias()]
    if async_sql is not None and tollgate_settings.ASYNC_COMMIT and _in_autocommit(connection):
        # TOLLGATE_ASYNC_COMMIT: the statement is its own transaction, which
        # commits without waiting for the WAL flush (set_config(..., true) lasts
        # until the end of that transaction only; never inside the app's own).
        sql = async_sql
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    except DatabaseError as exc:
        err = translate(exc)
        if isinstance(err, QuotaExceeded):
            blocked(connection, err)
        if err is None or err is exc:
            raise
        raise err from exc


def _text(value):
    return None if value is None else str(value)


_ARGS = "%s::text, %s::text, %s::bigint"
_KEYED_ARGS = _ARGS + ", %s::text"
_CALL = "SELECT %s FROM tollgate.%%s(%%s)" % _VERDICT_COLUMNS
_ASYNC_CALL = ("SELECT %s FROM tollgate.%%s(%%s) "
               "WHERE pg_catalog.set_config('synchronous_commit', 'off', true) IS NOT NULL") % _VERDICT_COLUMNS


def _verdict_call(function, customer, feature, amount, using, writes=True, key=None):
    params = [_text(customer), feature, amount]
    args = _ARGS
    if key is not None:
        params.append(key)
        args = _KEYED_ARGS
    rows = _fetch(using, _CALL % (function, args), params,
                  async_sql=_ASYNC_CALL % (function, args) if writes else None)
    return Verdict(*rows[0])


def consume(customer, feature, amount=1, *, idempotency_key=None, using=None):
    """Counts amount of feature for customer if the plan allows it; returns the Verdict.

    A blocked call counts nothing and returns ``allowed=False`` (it does not
    raise: see ``require``). Raises UnknownFeature (TG404) or InvalidArgument
    (TG422).

    idempotency_key (text, at most 255 characters): the first call with the key
    for this customer counts, and a later one returns the first one's Verdict
    and counts nothing (a blocked first call stays blocked), for at least 24
    hours. A call while the first is in flight waits for the first one's
    transaction; if that rolls back, the waiting call counts. The same key
    with another feature or amount raises InvalidArgument (TG422).
    """
    return _verdict_call("consume", customer, feature, amount, using, key=idempotency_key)


def check(customer, feature, amount=1, *, using=None):
    """The Verdict consume would give, changing nothing."""
    return _verdict_call("check", customer, feature, amount, using, writes=False)


def require(customer, feature, amount=1, *, idempotency_key=None, using=None):
    """Like consume, but a blocked call raises QuotaExceeded (SQLSTATE TG402).

    The error aborts the current transaction like any database error: inside
    ``transaction.atomic`` the block is rolled back. With an idempotency_key
    (see consume), the TG402 rolls the key back too: a retry is decided again.
    """
    return _verdict_call("require", customer, feature, amount, using, key=idempotency_key)


def note_blocked(customer, feature, amount=1, *, using=None):
    """Records the limit_reached event of a call that TG402 blocked; returns the Verdict.

    A TG402 (``require``, a row gate) aborts its transaction, and with it the
    limit_reached event the blocked call wrote: no upgrade email would follow.
    Call this after that transaction was rolled back, in one that commits: if
    the call would still be blocked it records the window's event (once,
    however often it is called); it never counts usage. The error translation
    and TollgateMiddleware call it for you (see ``blocked``).
    """
    return _verdict_call("note_blocked", customer, feature, amount, using)


def refund(customer, feature, amount=1, *, using=None):
    """Gives amount of feature back to customer (never below 0); returns the Verdict."""
    return _verdict_call("refund", customer, feature, amount, using)


def usage(customer, *, using=None):
    """One Verdict per feature for customer, changing nothing ("80 of 100 API calls used")."""
    rows = _fetch(using, "SELECT %s FROM tollgate.usage(%%s::text)" % _VERDICT_COLUMNS, [_text(customer)])
    return [Verdict(*row) for row in rows]


def set_customer(customer, email=None, stripe_customer=None, *, using=None):
    """Registers customer or updates it: email (where upgrade prompts go) and the Stripe customer id.

    None leaves a value as it is. Linking a Stripe customer links its
    subscriptions, and with them the customer's plan.
    """
    _fetch(using, "SELECT 1 FROM tollgate.set_customer(%s::text, %s::text, %s::text)",
           [_text(customer), email, stripe_customer])


def upgrade_link(customer, feature, *, using=None):
    """The customer's signed upgrade link for feature (tollgate.upgrade_link), or None when links are off.

    The link (``<public_url>/upgrade/<token>``, served by the sidecar) sends the customer to Stripe Checkout
    for the feature's upgrade in one click, and attributes the conversion to this prompt exactly. SQL signs it
    with a key the sidecar wrote at start-up, which the app's role cannot read; it costs two sha256(), so ask
    for it only when answering a blocked call. None: TOLLGATE_LINK_SECRET is not set for the sidecar, show
    TOLLGATE_UPGRADE_URL. Raises UnknownFeature (TG404) or InvalidArgument (TG422).
    """
    rows = _fetch(using, "SELECT tollgate.upgrade_link(%s::text, %s::text)", [_text(customer), feature])
    return rows[0][0]


def routes(*, using=None):
    """The routes TollgateMiddleware gates (``tollgate apply`` writes them), most specific first."""
    rows = _fetch(using, "SELECT method, pattern, feature, amount FROM tollgate.routes()", [])
    return [Route(*row) for row in rows]


# Blocked calls whose limit_reached event a TG402 rolled back, kept on the
# connection they failed on until its transaction is over: {(customer, feature): amount}.
_PENDING = "_tollgate_blocked"
_NOTING = "_tollgate_noting"


def blocked(connection, err):
    """Records the event err's TG402 rolled back (tollgate.note_blocked), now or once it is safe.

    Each QuotaExceeded is kept once, on the connection its call failed on. In
    autocommit the failed statement is over and it is noted at once; inside an
    atomic block the transaction is broken (or may still roll back), so it waits
    for ``note_pending``, which TollgateMiddleware and ``gate`` call once the
    view's transaction is over. Never raises.
    """
    if getattr(err, "_tollgate_kept", False) or not err.customer or not err.feature:
        return
    err._tollgate_kept = True
    pending = getattr(connection, _PENDING, None)
    if pending is None:
        pending = {}
        setattr(connection, _PENDING, pending)
    key = (str(err.customer), err.feature)
    pending[key] = max(pending.get(key, 0), err.blocked_amount)
    note_pending(connection)


def _transaction_over(connection):
    """True when a statement on connection would run in autocommit: not in a (maybe broken) transaction."""
    if connection.in_atomic_block or connection.needs_rollback:
        return False
    if connection.connection is None:
        return connection.settings_dict.get("AUTOCOMMIT", True)
    return connection.get_autocommit()  # set_autocommit(False): the caller's own transaction


def _initialized_connections():
    try:
        return connections.all(initialized_only=True)  # Django 4.1+
    except TypeError:
        return connections.all()


def note_pending(connection=None):
    """Calls tollgate.note_blocked, in autocommit, for the blocked calls kept on connection (None: every one).

    A connection still in an atomic block keeps them for a later call. Errors
    are logged, never raised: they must not hide the error or the 402 at hand.
    """
    for conn in [connection] if connection is not None else _initialized_connections():
        pending = getattr(conn, _PENDING, None)
        if not pending or getattr(conn, _NOTING, False):
            continue
        try:
            if not _transaction_over(conn):
                continue
        except Exception:  # the connection is gone: the next request's connection will try
            logger.exception("tollgate: could not tell whether the connection %r is in a transaction", conn.alias)
            continue
        setattr(conn, _PENDING, {})
        setattr(conn, _NOTING, True)
        try:
            for (customer, feature), amount in pending.items():
                try:
                    note_blocked(customer, feature, amount, using=conn.alias)
                except Exception:
                    logger.exception("tollgate: could not record the limit_reached event of %s for customer %s "
                                     "(tollgate.note_blocked)", feature, customer)
        finally:
            setattr(conn, _NOTING, False)


def _translating_wrapper(execute, sql, params, many, context):
    try:
        return execute(sql, params, many, context)
    except DatabaseError as exc:
        err = translate(exc)
        if err is None or err is exc:
            raise
        if isinstance(err, QuotaExceeded):
            blocked(context["connection"], err)
        raise err from exc


def install_error_translation(connection):
    """Makes every query on connection raise tollgate's errors (QuotaExceeded for TG402, ...).

    So a row gate's trigger surfaces as QuotaExceeded from
    ``Project.objects.create``. The wrapper goes first in the list: innermost,
    so your own execute wrappers see the translated error, and
    ``connection.execute_wrapper()`` blocks still pop their own wrapper.
    """
    if _translating_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _translating_wrapper)


def _on_connection_created(sender, connection, **kwargs):
    install_error_translation(connection)
