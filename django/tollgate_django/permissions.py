"""A Django REST framework permission that gates a view on a feature.

    from tollgate_django.permissions import TollgatePermission, gate_permission

    class ExportView(APIView):
        permission_classes = [IsAuthenticated, gate_permission("exports")]

or set ``tollgate_feature = "exports"`` (and ``tollgate_amount``,
``tollgate_idempotency_key``) on the view and list ``TollgatePermission``. A blocked request gets HTTP 402 with the same
JSON as the decorator. The customer is resolved like the decorator does, from
the user DRF authenticated (``request.user``: token, basic, JWT or session);
a request without one gets what TOLLGATE_ANONYMOUS says (DRF's 401 or 403 for
"block"). With TollgateMiddleware installed, allowed responses carry the
X-Tollgate-Remaining / X-Tollgate-Reset headers.

A request consumes once per customer and feature, however often DRF checks
the permissions (the browsable API checks them again for each form), and
however many gates meter it (a route of tollgate.yaml on the same view too).
"""

try:
    from rest_framework.permissions import BasePermission
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("tollgate_django.permissions needs Django REST framework (pip install djangorestframework)") from exc

from . import drf


def __getattr__(name):
    if name == "QuotaExceededAPIError":  # the 402 exception's class, for isinstance checks
        if drf._QuotaExceededAPIError is None:
            drf._QuotaExceededAPIError = drf._api_exception()
        return drf._QuotaExceededAPIError
    raise AttributeError(name)


class TollgatePermission(BasePermission):
    """Consumes the view's ``tollgate_feature`` (``tollgate_amount``, default 1) once per request."""

    feature = None
    amount = 1
    customer = None  # a callable of the request, or a dotted path; see tollgate_django.gate
    idempotency_key = None  # a callable of the request, a dotted path, or False; see tollgate_django.gate
    message = drf.CUSTOMER_REQUIRED

    def has_permission(self, request, view):
        feature = self.feature or getattr(view, "tollgate_feature", None)
        if feature is None:
            raise TypeError("%s needs tollgate_feature on %s" % (type(self).__name__, type(view).__name__))
        amount = self.amount if self.feature else getattr(view, "tollgate_amount", self.amount)
        key = self.idempotency_key if self.feature else getattr(view, "tollgate_idempotency_key",
                                                                self.idempotency_key)
        drf.gate(request, view, feature, amount, self.customer, key)
        return True


def gate_permission(feature, amount=1, customer=None, idempotency_key=None):
    """A TollgatePermission class for feature, for ``permission_classes``.

    amount, customer and idempotency_key as for ``tollgate_django.gate``.
    """
    def plain(value):  # a function as a class attribute would become a method
        return staticmethod(value) if callable(value) else value

    return type("TollgatePermission_%s" % feature, (TollgatePermission,),
                {"feature": feature, "amount": plain(amount), "customer": plain(customer),
                 "idempotency_key": plain(idempotency_key)})
