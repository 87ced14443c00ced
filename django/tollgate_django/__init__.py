"""Freemium gating for Django apps, enforced inside PostgreSQL by tollgate.

Every call goes through Django's own database connection (the alias in the
TOLLGATE_DATABASE setting, 'default' unless set), inside the current
transaction::

    from tollgate_django import consume, gate, QuotaExceeded

    verdict = consume(str(request.user.pk), "api_calls")

    @gate("api_calls")
    def export(request): ...
"""

from .db import Route, Verdict, check, consume, note_blocked, refund, require, routes, set_customer, usage
from .decorators import gate
from .errors import InvalidArgument, QuotaExceeded, TollgateError, UnknownFeature, translate
from .middleware import TollgateMiddleware, tollgate_exempt

__all__ = [
    "InvalidArgument",
    "QuotaExceeded",
    "Route",
    "TollgateError",
    "TollgateMiddleware",
    "UnknownFeature",
    "Verdict",
    "check",
    "consume",
    "gate",
    "note_blocked",
    "refund",
    "require",
    "routes",
    "set_customer",
    "tollgate_exempt",
    "translate",
    "usage",
]
