"""Freemium gating for Django apps, enforced inside PostgreSQL by tollgate.

Every call goes through Django's own database connection (the alias in the
TOLLGATE_DATABASE setting, 'default' unless set), inside the current
transaction::

    from tollgate_django import consume, gate, QuotaExceeded

    verdict = consume(str(request.user.pk), "api_calls")

    @gate("api_calls")
    def export(request): ...
"""

from .db import (Route, Verdict, check, consume, note_blocked, refund, require, routes, set_customer, upgrade_link,
                 usage)
from .decorators import gate
from .entitlements import clear_override, customer_summary, grant, set_override
from .errors import (AdminRequired, IdempotencyKeyError, InvalidArgument, QuotaExceeded, TollgateError,
                     UnknownFeature, translate)
from .middleware import TollgateMiddleware, tollgate_exempt

__all__ = [
    "AdminRequired",
    "IdempotencyKeyError",
    "InvalidArgument",
    "QuotaExceeded",
    "Route",
    "TollgateError",
    "TollgateMiddleware",
    "UnknownFeature",
    "Verdict",
    "check",
    "clear_override",
    "consume",
    "customer_summary",
    "gate",
    "grant",
    "note_blocked",
    "refund",
    "require",
    "routes",
    "set_customer",
    "set_override",
    "tollgate_exempt",
    "translate",
    "upgrade_link",
    "usage",
]
