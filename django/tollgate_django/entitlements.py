"""What a customer gets beyond the plan: grants, overrides, and the support view of one customer.

These change what a customer gets, so tollgate grants them to the role
``tollgate_admin`` only, never to ``tollgate_app``: your app's database user
cannot raise its own customers' quotas. Each call goes through the database
alias in TOLLGATE_ADMIN_DATABASE (default: TOLLGATE_DATABASE), whose user an
operator made a member of tollgate_admin::

    DATABASES["support"] = {..., "USER": "support"}   # GRANT tollgate_admin TO support;
    TOLLGATE_ADMIN_DATABASE = "support"

Each call is one statement on that alias's connection, inside its current
transaction (in autocommit it counts at once). Errors: UnknownFeature
(TG404), InvalidArgument (TG422, also raised before any query for an amount
or quota that is not an integer in range), AdminRequired (SQLSTATE 42501: the
alias's user is not a member of tollgate_admin).
"""

import datetime
import json

from django.db import DatabaseError, connections
from django.utils import timezone

from .conf import tollgate_settings
from .db import _text, database_alias
from .errors import AdminRequired, InvalidArgument, sqlstate, translate

BIGINT_MAX = 2 ** 63 - 1
INSUFFICIENT_PRIVILEGE = "42501"


def admin_alias():
    """The database alias of the entitlement calls: TOLLGATE_ADMIN_DATABASE, else TOLLGATE_DATABASE."""
    return tollgate_settings.ADMIN_DATABASE or database_alias()


def _integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument("%s must be an integer, not %r" % (name, value))
    if value < minimum or value > BIGINT_MAX:
        raise InvalidArgument("%s must be from %d to %d, not %d" % (name, minimum, BIGINT_MAX, value))
    return value


def _moment(name, value):
    """None, an aware datetime, or a timedelta from now (a naive datetime is taken in the current time zone)."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        if value <= datetime.timedelta(0):
            raise InvalidArgument("%s must be in the future, not %s from now" % (name, value))
        try:
            return timezone.now() + value
        except OverflowError:
            raise InvalidArgument("%s is too far in the future: now + %s" % (name, value)) from None
    if isinstance(value, datetime.datetime):
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value
    raise InvalidArgument("%s must be a datetime or a timedelta, not %r" % (name, value))


def _admin_fetch(function, using, sql, params):
    alias = using or admin_alias()
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    except DatabaseError as exc:
        if sqlstate(exc) == INSUFFICIENT_PRIVILEGE:
            user = connection.settings_dict.get("USER") or "the user"
            raise AdminRequired(
                "the database user of alias %r (%s) may not call tollgate.%s: make it a member of tollgate_admin "
                "(GRANT tollgate_admin TO %s), or set TOLLGATE_ADMIN_DATABASE to an alias whose user is one"
                % (alias, user, function, user), alias=alias, function=function) from exc
        err = translate(exc)
        if err is None or err is exc:
            raise
        raise err from exc


def grant(customer, feature, amount, *, expires_at=None, reason=None, key=None, using=None):
    """Grants customer amount units of feature on top of the quota; returns the grant's id.

    The units are spent once a window's quota is used up, across windows, until
    expires_at (an aware datetime, a timedelta from now, or None: never). A
    refund gives units spent past the quota back to the grant. key (at most 255
    characters) makes it idempotent: the same key for the customer grants once
    and returns the first grant's id; with another feature or amount it raises
    InvalidArgument (TG422). reason is kept for support (at most 1000
    characters). Not for features with a rolling period (TG422).
    """
    _integer("amount", amount, 1)
    rows = _admin_fetch(
        "grant", using,
        "SELECT tollgate.grant(%s::text, %s::text, %s::bigint, %s::timestamptz, %s::text, %s::text)",
        [_text(customer), feature, amount, _moment("expires_at", expires_at), reason, key])
    return rows[0][0]


def set_override(customer, feature, quota, *, until=None, reason=None, using=None):
    """Gives customer its own quota of feature in place of the plan's; None is unlimited.

    It holds until ``until`` (an aware datetime, a timedelta from now, or None:
    until ``clear_override``), from the customer's next call on: a quota below
    the usage blocks, a higher one unblocks at once. Setting it again replaces
    it.
    """
    if quota is not None:
        _integer("quota", quota, 0)
    _admin_fetch(
        "set_override", using,
        "SELECT 1 FROM tollgate.set_override(%s::text, %s::text, %s::bigint, %s::timestamptz, %s::text)",
        [_text(customer), feature, quota, _moment("until", until), reason])


def clear_override(customer, feature, *, using=None):
    """Removes customer's override of feature: the plan's quota again. False when there was none."""
    rows = _admin_fetch("clear_override", using, "SELECT tollgate.clear_override(%s::text, %s::text)",
                        [_text(customer), feature])
    return bool(rows[0][0])


def customer_summary(customer, *, using=None):
    """Everything support asks about one customer, as a dict (``tollgate customer`` prints the same).

    Keys: customer, known, email, stripe_customer, plan, subscriptions,
    features (each feature's verdict with its override and grants), and the
    last 10 events, emails and plan_changes. Times are ISO 8601 strings, as
    PostgreSQL writes them in JSON.
    """
    rows = _admin_fetch("customer_summary", using, "SELECT tollgate.customer_summary(%s::text)::text",
                        [_text(customer)])
    return json.loads(rows[0][0])
