"""Django REST framework: routes of tollgate.yaml are gated after DRF authenticates.

DRF authenticates inside the view (``APIView.initial``): token, basic, JWT or
session. TollgateMiddleware runs before that and would see an anonymous user,
so for a DRF view it leaves the route to this module: ``install_route_hook``
wraps ``APIView.initial`` once, and after DRF's own authentication,
permissions and throttles the route is gated for the user DRF authenticated.
A blocked request gets tollgate's 402 JSON from DRF; a request without a
customer gets what TOLLGATE_ANONYMOUS says (DRF's 401/403 for "block").

Nothing here imports DRF unless it is installed.
"""

import functools
import logging
import threading

from .errors import IdempotencyKeyError
from .http import _django_request, charge, customer_for, idempotency_key, idempotency_key_payload, payload
from .http import resolve_customer

logger = logging.getLogger("tollgate_django")

_install_lock = threading.Lock()


def _api_exception():
    from rest_framework.exceptions import APIException

    class QuotaExceededAPIError(APIException):
        """HTTP 402 with tollgate's JSON body (numbers stay numbers)."""

        status_code = 402
        default_code = "quota_exceeded"
        default_detail = "Quota exceeded."

        def __init__(self, verdict):
            body = payload(verdict)
            super().__init__(detail=body["message"], code=self.default_code)
            # DRF renders a dict detail as the body; set after __init__, which would make every value a string
            self.detail = body

    return QuotaExceededAPIError


_QuotaExceededAPIError = None


def _key_exception():
    from rest_framework.exceptions import APIException

    class IdempotencyKeyAPIError(APIException):
        """HTTP 422 with the body the decorator answers for a malformed or reused idempotency key."""

        status_code = 422
        default_code = "invalid_idempotency_key"
        default_detail = "Invalid idempotency key."

        def __init__(self, err):
            body = idempotency_key_payload(err)
            super().__init__(detail=body["message"], code=body["error"])
            self.detail = body

    return IdempotencyKeyAPIError


_IdempotencyKeyAPIError = None


def idempotency_key_error(err):
    """DRF's APIException for an IdempotencyKeyError: HTTP 422 with the decorator's JSON."""
    global _IdempotencyKeyAPIError
    if _IdempotencyKeyAPIError is None:
        _IdempotencyKeyAPIError = _key_exception()
    return _IdempotencyKeyAPIError(err)


def quota_exceeded_error(verdict):
    """DRF's APIException for a blocked Verdict: HTTP 402 with tollgate's JSON."""
    global _QuotaExceededAPIError
    if _QuotaExceededAPIError is None:
        _QuotaExceededAPIError = _api_exception()
    return _QuotaExceededAPIError(verdict)


CUSTOMER_REQUIRED = "Sign in to use this feature."


def gate(request, view, feature, amount, customer=None, key=None):
    """Meters feature for the customer of DRF's request; raises DRF's exception when it must not pass.

    Returns the Verdict, or None when the request passes unmetered
    (TOLLGATE_ANONYMOUS). Raises the 402 APIException when blocked, and DRF's
    NotAuthenticated or PermissionDenied (``view.permission_denied``) when
    TOLLGATE_ANONYMOUS blocks a request without a customer (a callable's
    HttpResponse counts as a block here: DRF answers it). key: the gate's
    idempotency_key option (see ``tollgate_django.gate``); a malformed or
    reused key raises a 422 APIException.
    """
    customer_key, refused = customer_for(request, feature, customer)
    if refused is not None:
        view.permission_denied(request, message=CUSTOMER_REQUIRED, code="customer_required")
    if customer_key is None:
        return None
    units = amount(request) if callable(amount) else amount
    try:
        verdict = charge(request, customer_key, feature, units, key=idempotency_key(request, feature, key))
    except IdempotencyKeyError as err:
        raise idempotency_key_error(err) from err
    if not verdict.allowed:
        raise quota_exceeded_error(verdict)
    return verdict


def _gate_route(view, request):
    plain = _django_request(request)
    route = getattr(plain, "_tollgate_route", None)
    if route is None:
        return
    plain._tollgate_route = None
    gate(request, view, route.feature, route.amount)


def install_route_hook():
    """Wraps APIView.initial once so that TollgateMiddleware's routes of DRF views are gated there.

    The wrapper runs DRF's initial (authentication, permissions, throttles)
    first, then gates the route the middleware left on the request, if any:
    views without a route are untouched. A no-op when DRF is not installed.
    """
    try:
        from rest_framework.views import APIView
    except ImportError:
        return False
    with _install_lock:
        if getattr(APIView.initial, "_tollgate_route_hook", False):
            return True
        original = APIView.initial

        @functools.wraps(original)
        def initial(self, request, *args, **kwargs):
            original(self, request, *args, **kwargs)
            _gate_route(self, request)

        initial._tollgate_route_hook = True
        APIView.initial = initial
    return True


def gate_route_late(request, route):
    """Counts a route whose DRF view ran without reaching the hook: it cannot block any more, only count."""
    customer = resolve_customer(request)
    if customer is None:
        return
    try:
        charge(request, customer, route.feature, route.amount, key=idempotency_key(request, route.feature))
    except Exception:
        logger.exception("tollgate: could not count %s for the route %s %s", route.feature, route.method,
                         route.pattern)
