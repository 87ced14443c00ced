"""The view decorator: ``@gate("api_calls")``."""

import asyncio
import functools

from .db import note_pending
from .errors import IdempotencyKeyError
from .http import annotate, charge, customer_for, idempotency_key as request_key, idempotency_key_response
from .http import quota_exceeded_response


def gate(feature, amount=1, customer=None, idempotency_key=None):
    """Gates a view on feature: each request consumes amount for its customer.

    A blocked request gets HTTP 402 (JSON, or a small page for browsers) and
    the view does not run; an allowed response carries X-Tollgate-Remaining
    and X-Tollgate-Reset. amount may be a callable of the request. customer is
    a callable of the request (or a dotted path to one) returning the customer
    key; by default the TOLLGATE_CUSTOMER setting, else the authenticated
    user's pk. A request without a customer gets what TOLLGATE_ANONYMOUS says
    ("block" by default: 401, or the login page for browsers).

    idempotency_key: a callable of the request (or a dotted path to one)
    returning the request's key, or None for none: a request retried with the
    same key (for the same customer, within 24 hours) counts once, and gets the
    first one's answer (a 402 stays a 402; its view runs again: the key makes
    the count idempotent, not the view). Without it, the header named by
    TOLLGATE_IDEMPOTENCY_HEADER, when set; False turns even that off. A key
    that is malformed, or was used for another amount, gets HTTP 422.

    A request counts once per feature: when a route of tollgate.yaml (the
    middleware) already consumed this feature for the request, the decorator
    reuses that answer and counts nothing more.

    The consumption joins the request's transaction: with ATOMIC_REQUESTS a
    view that raises gives it back; without, it stays counted. When the view
    is done and no transaction is open any more, the limit_reached events that
    its TG402s rolled back are recorded again (tollgate.note_blocked); with
    ATOMIC_REQUESTS TollgateMiddleware does that after the rollback.

    For class-based views: ``method_decorator(gate("api_calls"), name="dispatch")``.
    On Django REST framework views use ``tollgate_django.permissions`` instead:
    DRF authenticates inside the view, after a decorator on dispatch has run.
    Async views are not supported: the database calls are synchronous.
    """

    def decorator(view):
        if asyncio.iscoroutinefunction(view):
            raise TypeError("tollgate_django.gate supports synchronous views only, not %s" % view.__qualname__)

        @functools.wraps(view)
        def gated(request, *args, **kwargs):
            key, response = customer_for(request, feature, customer)
            if response is not None:
                return response
            if key is None:
                return run(request, *args, **kwargs)
            units = amount(request) if callable(amount) else amount
            try:
                verdict = charge(request, key, feature, units,
                                 key=request_key(request, feature, idempotency_key))
            except IdempotencyKeyError as err:
                return idempotency_key_response(request, err)
            if not verdict.allowed:
                return quota_exceeded_response(request, verdict)
            return annotate(run(request, *args, **kwargs), verdict)

        def run(request, *args, **kwargs):
            try:
                return view(request, *args, **kwargs)
            finally:
                note_pending()  # waits, inside ATOMIC_REQUESTS' transaction; never raises

        return gated

    return decorator
