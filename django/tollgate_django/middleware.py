"""TollgateMiddleware: gates the routes of tollgate.yaml, renders QuotaExceeded as 402."""

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connections

from .db import blocked, consume, database_alias, note_pending, refund, routes
from .errors import QuotaExceeded, translate
from .http import annotate, quota_exceeded_response, remember, remembered, resolve_customer

DEFAULT_ROUTES_CACHE_SECONDS = 30

logger = logging.getLogger("tollgate_django")

_routes_lock = threading.Lock()
_routes_cache = {}  # alias -> (monotonic expiry, [Route])


def clear_routes_cache():
    """Forgets the cached routes: the next request reads tollgate.routes() again."""
    with _routes_lock:
        _routes_cache.clear()


def cached_routes(alias):
    """tollgate.routes(), read at most once per TOLLGATE_ROUTES_CACHE_SECONDS (30; 0 = every request)."""
    ttl = getattr(settings, "TOLLGATE_ROUTES_CACHE_SECONDS", DEFAULT_ROUTES_CACHE_SECONDS)
    now = time.monotonic()
    if ttl > 0:
        with _routes_lock:
            hit = _routes_cache.get(alias)
        if hit is not None and hit[0] > now:
            return hit[1]
    found = routes(using=alias)
    if ttl > 0:
        with _routes_lock:
            _routes_cache[alias] = (now + ttl, found)
    return found


def match_route(method, path, alias=None):
    """The first (most specific) route that method and path match, or None."""
    for route in cached_routes(alias or database_alias()):
        if route.matches(method, path):
            return route
    return None


class _Charge:
    __slots__ = ("customer", "feature", "amount", "alias")

    def __init__(self, customer, feature, amount, alias):
        self.customer, self.feature, self.amount, self.alias = customer, feature, amount, alias


class TollgateMiddleware:
    """Gates the routes stored by ``tollgate apply`` and renders QuotaExceeded as HTTP 402.

    Put it after AuthenticationMiddleware. For a request whose method and path
    (``request.path_info``) match a route, it consumes the route's amount of
    its feature for the request's customer before the view runs, and answers
    402 instead of running the view when the customer is over the limit.

    The route's consumption happens before the view's transaction begins, so
    under ATOMIC_REQUESTS the middleware gives it back (tollgate.refund) when
    the view raises, like the view's own consumption is rolled back. Without
    ATOMIC_REQUESTS it stays counted, as a decorator's would.

    A QuotaExceeded raised by a view (``require``, a row gate on
    ``Model.objects.create``) becomes the same 402. Its TG402 rolled back the
    limit_reached event the blocked call wrote: once the view's transaction is
    over, the middleware records it again (tollgate.note_blocked), so the
    upgrade email still goes out, also when the view caught the error itself.

    Responses get X-Tollgate-Remaining / X-Tollgate-Reset from the gates that
    let the request through (middleware, ``gate``, the DRF permission).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        note_pending()  # blocked calls of a view that caught QuotaExceeded itself
        for verdict in remembered(request):
            annotate(response, verdict)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        if getattr(view_func, "tollgate_exempt", False):
            return None
        alias = database_alias()
        route = match_route(request.method, request.path_info, alias)
        if route is None:
            return None
        customer = resolve_customer(request)
        if customer is None:
            return None
        verdict = consume(customer, route.feature, route.amount, using=alias)
        if not verdict.allowed:
            return quota_exceeded_response(request, verdict)
        remember(request, verdict)
        atomic = connections[alias].settings_dict.get("ATOMIC_REQUESTS", False) and \
            alias not in getattr(view_func, "_non_atomic_requests", set())
        if atomic:
            request._tollgate_charge = _Charge(customer, route.feature, route.amount, alias)
        return None

    def process_exception(self, request, exception):
        charge = getattr(request, "_tollgate_charge", None)
        if charge is not None:
            # the view's transaction was rolled back: so is the route's use
            request._tollgate_charge = None
            request._tollgate_verdicts = []
            try:
                refund(charge.customer, charge.feature, charge.amount, using=charge.alias)
            except DatabaseError:  # never hide the view's own exception
                logger.exception("tollgate: could not give back %s of %s to customer %s",
                                 charge.amount, charge.feature, charge.customer)
        err = translate(exception)
        if isinstance(err, QuotaExceeded):
            # The view's transaction is over (ATOMIC_REQUESTS rolled it back
            # before this runs), and with it the blocked call's limit_reached
            # event: record it again. The error translation kept the call on its
            # connection already; an error it did not see (QuotaExceeded.from_verdict,
            # TOLLGATE_TRANSLATE_ERRORS = False) is kept here.
            try:
                blocked(connections[database_alias()], err)
                note_pending()
            except Exception:  # never hide the 402
                logger.exception("tollgate: could not record the limit_reached event of %s", err.feature)
            return quota_exceeded_response(request, err)
        return None


def tollgate_exempt(view):
    """Marks a view the middleware never gates (its route stays gated for other views)."""
    view.tollgate_exempt = True
    return view
