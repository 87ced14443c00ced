"""tollgate's errors, translated from the server's SQLSTATE at one boundary.

tollgate raises its own SQLSTATE class TG: TG402 quota exceeded, TG404 unknown
feature (or plan), TG422 invalid argument. The driver reports the code as
``pgcode`` (psycopg2) or ``sqlstate`` (psycopg 3); Django wraps the driver's
exception in ``django.db.DatabaseError`` and keeps it as ``__cause__``.

The errors below subclass ``django.db.DatabaseError``, so code that already
catches database errors keeps working, and ``transaction.atomic`` rolls back
on them like on any other database error.
"""

import json

from django.db import DatabaseError
from django.utils.dateparse import parse_datetime

QUOTA_EXCEEDED = "TG402"
UNKNOWN_FEATURE = "TG404"
INVALID_ARGUMENT = "TG422"


class TollgateError(DatabaseError):
    """An error that tollgate's SQL API raised (SQLSTATE class TG)."""

    sqlstate = None

    def __init__(self, message="", *, detail=None, hint=None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.hint = hint


class UnknownFeature(TollgateError):
    """SQLSTATE TG404: the feature (or plan) is not defined. Run ``tollgate apply``."""

    sqlstate = UNKNOWN_FEATURE


class InvalidArgument(TollgateError):
    """SQLSTATE TG422: an empty customer, a non-positive amount, a malformed email or Stripe id, an
    idempotency or grant key reused for another call."""

    sqlstate = INVALID_ARGUMENT


class IdempotencyKeyError(InvalidArgument):
    """A gate's idempotency key that tollgate cannot take: the gate answers HTTP 422.

    Either the key is malformed (empty, over 255 characters, control
    characters), or tollgate refused it (TG422): the key was already used for
    another amount of the feature. ``reused`` tells which.
    """

    def __init__(self, message="", *, feature=None, reused=False, detail=None, hint=None):
        super().__init__(message, detail=detail, hint=hint)
        self.feature = feature
        self.reused = reused


class AdminRequired(TollgateError):
    """SQLSTATE 42501: the database user may not change entitlements (grant, set_override, ...).

    Those functions are granted to the role tollgate_admin only, never to
    tollgate_app: the alias's user (TOLLGATE_ADMIN_DATABASE) must be a member
    of tollgate_admin. ``alias`` is the database alias the call went through.
    """

    sqlstate = "42501"

    def __init__(self, message="", *, alias=None, function=None, detail=None, hint=None):
        super().__init__(message, detail=detail, hint=hint)
        self.alias = alias
        self.function = function


class QuotaExceeded(TollgateError):
    """SQLSTATE TG402: the customer's plan does not allow this use of the feature.

    Raised by ``require``, by row gates (``tollgate.attach_row_gate``) on INSERT
    or UPDATE, and by your own code with ``QuotaExceeded.from_verdict(v)``.
    ``TollgateMiddleware`` renders it as HTTP 402.

    ``upgrade_message`` is the feature's message for the customer (the server's
    HINT); ``resets_at`` is an aware datetime, or None when the quota never
    resets; ``amount`` is the blocked call's amount when the server reports it,
    else None.
    """

    sqlstate = QUOTA_EXCEEDED

    def __init__(self, message="", *, feature=None, customer=None, plan=None, used=None, quota=None,
                 resets_at=None, amount=None, detail=None, hint=None):
        super().__init__(message, detail=detail, hint=hint)
        self.feature = feature
        self.customer = customer
        self.plan = plan
        self.used = used
        self.quota = quota
        self.resets_at = resets_at
        self.amount = amount

    @property
    def upgrade_message(self):
        return self.hint or self.message

    @property
    def blocked_amount(self):
        """The amount to re-evaluate the blocked call with (tollgate.note_blocked).

        ``amount`` when known; else the least amount that used and quota block
        (quota - used + 1), which gives the same verdict; else 1.
        """
        if isinstance(self.amount, int) and not isinstance(self.amount, bool) and self.amount > 0:
            return self.amount
        if isinstance(self.quota, int) and isinstance(self.used, int):
            return max(self.quota - self.used + 1, 1)
        return 1

    @classmethod
    def from_verdict(cls, verdict):
        """The error for a blocked ``Verdict`` (from ``consume`` or ``check``)."""
        return cls(
            "quota exceeded: %s for customer %s (%s of %s used)"
            % (verdict.feature, verdict.customer, verdict.used, verdict.quota),
            feature=verdict.feature, customer=verdict.customer, plan=verdict.plan, used=verdict.used,
            quota=verdict.quota, resets_at=verdict.resets_at, hint=verdict.message,
        )


_CLASSES = {cls.sqlstate: cls for cls in (QuotaExceeded, UnknownFeature, InvalidArgument)}


def _server_error(exc):
    """The driver's exception carrying a SQLSTATE in exc's chain, and the code."""
    seen = 0
    while exc is not None and seen < 8:
        if not isinstance(exc, TollgateError):
            # psycopg 3: sqlstate; psycopg2: pgcode
            code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
            if isinstance(code, str):
                return exc, code
        exc = exc.__cause__
        seen += 1
    return None, None


def sqlstate(exc):
    """The SQLSTATE of a database error (Django's or the driver's), or None."""
    if isinstance(exc, TollgateError):
        return exc.sqlstate
    return _server_error(exc)[1]


def translate(exc):
    """tollgate's error for exc, or None when exc is not one of tollgate's.

    exc may be a ``django.db.DatabaseError`` (whose ``__cause__`` is the
    driver's error), a psycopg2 or psycopg 3 error, or already a TollgateError
    (returned as is).
    """
    if isinstance(exc, TollgateError):
        return exc
    if not isinstance(exc, Exception):
        return None
    server, code = _server_error(exc)
    if server is None or not code.startswith("TG"):
        return None
    diag = getattr(server, "diag", None)
    message = getattr(diag, "message_primary", None) or str(server).strip()
    detail = getattr(diag, "message_detail", None)
    hint = getattr(diag, "message_hint", None)
    cls = _CLASSES.get(code, TollgateError)
    if cls is not QuotaExceeded:
        err = cls(message, detail=detail, hint=hint)
        if cls is TollgateError:
            err.sqlstate = code
        return err
    fields = {}
    if detail:
        try:
            fields = json.loads(detail)
        except ValueError:
            fields = {}
        if not isinstance(fields, dict):
            fields = {}
    resets_at = fields.get("resets_at")
    if isinstance(resets_at, str):
        resets_at = parse_datetime(resets_at)
    return QuotaExceeded(
        message, feature=fields.get("feature"), customer=fields.get("customer"), plan=fields.get("plan"),
        used=fields.get("used"), quota=fields.get("quota"), resets_at=resets_at, amount=fields.get("amount"),
        detail=detail, hint=hint,
    )
