"""A Django REST framework permission that gates a view on a feature.

    from tollgate_django.permissions import TollgatePermission, gate_permission

    class ExportView(APIView):
        permission_classes = [IsAuthenticated, gate_permission("exports")]

or set ``tollgate_feature = "exports"`` (and ``tollgate_amount``) on the view
and list ``TollgatePermission``. A blocked request gets HTTP 402 with the same
JSON as the decorator. The customer is resolved like the decorator does, from
DRF's authenticated ``request.user``; a request without one is not metered.
With TollgateMiddleware installed, allowed responses carry the
X-Tollgate-Remaining / X-Tollgate-Reset headers.

A request consumes once per customer, feature and amount, however often DRF
checks the permissions (the browsable API checks them again for each form).
"""

try:
    from rest_framework.exceptions import APIException
    from rest_framework.permissions import BasePermission
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("tollgate_django.permissions needs Django REST framework (pip install djangorestframework)") from exc

from .db import consume
from .http import payload, remember, resolve_customer


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


class TollgatePermission(BasePermission):
    """Consumes the view's ``tollgate_feature`` (``tollgate_amount``, default 1) once per request."""

    feature = None
    amount = 1
    customer = None  # a callable of the request, or a dotted path; see tollgate_django.gate

    def has_permission(self, request, view):
        feature = self.feature or getattr(view, "tollgate_feature", None)
        if feature is None:
            raise TypeError("%s needs tollgate_feature on %s" % (type(self).__name__, type(view).__name__))
        amount = self.amount if self.feature else getattr(view, "tollgate_amount", self.amount)
        customer = resolve_customer(request, self.customer)
        if customer is None:
            return True
        units = amount(request) if callable(amount) else amount
        # DRF may ask again for the same request (BrowsableAPIRenderer checks the
        # permissions once per form it shows, on a clone sharing the HttpRequest):
        # consume once per request and give the same answer after that.
        decided = _decided(request)
        key = (customer, feature, units)
        verdict = decided.get(key)
        if verdict is None:
            verdict = decided[key] = consume(customer, feature, units)
            remember(request, verdict)  # the middleware puts it in the headers, of a 402 too
        if not verdict.allowed:
            raise QuotaExceededAPIError(verdict)
        return True


def _decided(request):
    """The verdicts the permissions gave for request, on Django's HttpRequest that DRF's Request wraps."""
    request = getattr(request, "_request", request)
    decided = getattr(request, "_tollgate_permission_verdicts", None)
    if decided is None:
        decided = request._tollgate_permission_verdicts = {}
    return decided


def gate_permission(feature, amount=1, customer=None):
    """A TollgatePermission class for feature, for ``permission_classes``."""
    def plain(value):  # a function as a class attribute would become a method
        return staticmethod(value) if callable(value) else value

    return type("TollgatePermission_%s" % feature, (TollgatePermission,),
                {"feature": feature, "amount": plain(amount), "customer": plain(customer)})
