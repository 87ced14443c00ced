"""TollgateMiddleware: gates the routes of tollgate.yaml, renders QuotaExceeded as 402."""

import logging
import sys
import threading
import time

from django.db import connections, transaction

from .conf import tollgate_settings
from .db import blocked, database_alias, note_pending, routes
from .errors import IdempotencyKeyError, QuotaExceeded, translate
from .http import (annotate, charge, customer_for, idempotency_key, idempotency_key_response, quota_exceeded_response,
                   remembered)

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
    ttl = tollgate_settings.ROUTES_CACHE_SECONDS
    now = time.monotonic()
    if ttl > 0:
        with _routes_lock:
            hit = _routes_cache.get(alias)
        if hit is not None and hit[0] > now:
            return hit[1]
    found = routes(using=alias)
    _warn_once(found)
    if ttl > 0:
        with _routes_lock:
            _routes_cache[alias] = (now + ttl, found)
    return found


_warned = []


def _warn_once(found):
    """Logs tollgate.W001's warning the first time routes are read (the system check needs --database)."""
    if _warned or not found or tollgate_settings.ANONYMOUS != "allow":
        return
    from .checks import token_authentication_classes

    tokens = token_authentication_classes()
    _warned.append(True)
    if tokens:
        logger.warning("tollgate: routes are gated while DRF authenticates with %s and TOLLGATE_ANONYMOUS is "
                       '"allow": a route on a plain Django view sees those requests as anonymous and lets them '
                       "through unmetered (tollgate.W001)", ", ".join(tokens))


def match_route(method, path, alias=None):
    """The first (most specific) route that method and path match, or None."""
    for route in cached_routes(alias or database_alias()):
        if route.matches(method, path):
            return route
    return None


def _drf_view_class(view_func):
    """The APIView class of a Django REST framework view function, or None."""
    cls = getattr(view_func, "cls", None)
    if cls is None or not isinstance(cls, type):
        return None
    try:
        from rest_framework.views import APIView
    except ImportError:
        return None
    return cls if issubclass(cls, APIView) else None


class TollgateMiddleware:
    """Gates the routes stored by ``tollgate apply`` and renders QuotaExceeded as HTTP 402.

    Put it after AuthenticationMiddleware. For a request whose method and path
    (``request.path_info``) match a route, it consumes the route's amount of
    its feature for the request's customer before the view runs, and answers
    402 instead of running the view when the customer is over the limit. A
    request counts once per feature, however many gates (a route, ``@gate``, a
    DRF permission) meter it.

    Django REST framework authenticates inside the view (token, basic, JWT), so
    on a DRF view the route is gated right after DRF's authentication,
    permissions and throttles (``APIView.initial``), for the user DRF
    authenticated; a blocked request gets the 402 from DRF.

    A request without a customer gets what TOLLGATE_ANONYMOUS says ("block":
    401, or the login page for browsers; "allow": through, unmetered; or your
    callable's answer).

    With TOLLGATE_IDEMPOTENCY_HEADER set, a request that carries the header
    (``Idempotency-Key``) counts once per key: a retry gets the first one's
    answer and counts nothing (see ``gate``).

    With ATOMIC_REQUESTS the route's consumption is part of the request's
    transaction: the middleware opens it before consuming, and Django's view
    transaction nests in it (a savepoint); a view that raises rolls both back.
    Without ATOMIC_REQUESTS the consumption is its own transaction (see
    TOLLGATE_ASYNC_COMMIT). A request that starts inside a transaction (a
    ``TestCase``) runs its view in a savepoint, so a row gate's QuotaExceeded
    rendered as 402 leaves the test's transaction usable.

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
        from .drf import install_route_hook

        install_route_hook()  # a no-op without DRF

    def __call__(self, request):
        try:
            response = self.get_response(request)
        except BaseException:
            self._close_atomic(request, sys.exc_info())
            raise
        self._close_atomic(request, None)
        note_pending()  # blocked calls of a view that caught QuotaExceeded itself, or of a closed transaction
        self._unreached_route(request, response)
        for verdict in remembered(request):
            annotate(response, verdict)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        alias = database_alias()
        connection = connections[alias]
        atomic_view = connection.settings_dict.get("ATOMIC_REQUESTS", False) and \
            alias not in getattr(view_func, "_non_atomic_requests", set())
        route = None
        if not getattr(view_func, "tollgate_exempt", False):
            route = match_route(request.method, request.path_info, alias)
        if route is not None and _drf_view_class(view_func) is not None:
            request._tollgate_route = route  # gated in APIView.initial, once DRF has authenticated (drf.py)
            route = None
        if route is not None and atomic_view:
            # the route's consumption joins the request's transaction: ours, in which Django's nests
            self._open_atomic(request, alias)
            try:
                return self._gate(request, route, alias)
            except BaseException:
                request._tollgate_failed = True
                raise
        if route is not None:
            response = self._gate(request, route, alias)
            if response is not None:
                return response
        if connection.in_atomic_block and not atomic_view:
            # a request inside a transaction (a TestCase): its view gets a savepoint, as a request
            # in production gets transactions of its own
            self._open_atomic(request, alias)
        return None

    def _gate(self, request, route, alias):
        customer, response = customer_for(request, route.feature)
        if response is not None:
            return response
        if customer is None:
            return None
        try:
            verdict = charge(request, customer, route.feature, route.amount, using=alias,
                             key=idempotency_key(request, route.feature))
        except IdempotencyKeyError as err:
            return idempotency_key_response(request, err)
        if not verdict.allowed:
            return quota_exceeded_response(request, verdict)
        return None

    @staticmethod
    def _open_atomic(request, alias):
        atomic = transaction.atomic(using=alias)
        atomic.__enter__()
        request._tollgate_atomic = atomic

    @staticmethod
    def _close_atomic(request, exc_info):
        atomic = getattr(request, "_tollgate_atomic", None)
        if atomic is None:
            return
        request._tollgate_atomic = None
        if exc_info is None and getattr(request, "_tollgate_failed", False):
            # the view raised (process_exception saw it): roll back, as ATOMIC_REQUESTS does
            exc_info = (_ViewFailed, _ViewFailed(), None)
        if exc_info is None:
            atomic.__exit__(None, None, None)
        else:
            atomic.__exit__(*exc_info)

    @staticmethod
    def _unreached_route(request, response):
        """A DRF view's route that APIView.initial never gated (a view overriding initial without super)."""
        route = getattr(request, "_tollgate_route", None)
        if route is None or response.status_code >= 400:
            return  # DRF refused the request before the gate (401, 403, 429): nothing to count
        request._tollgate_route = None
        logger.warning("tollgate: the route %s %s of %s reached no gate in APIView.initial; counting it after "
                       "the view ran", route.method, route.pattern, route.feature)
        from .drf import gate_route_late

        gate_route_late(request, route)

    def process_exception(self, request, exception):
        request._tollgate_failed = True
        err = translate(exception)
        if isinstance(err, QuotaExceeded):
            # The view's transaction is over (ATOMIC_REQUESTS rolled it back
            # before this runs), and with it the blocked call's limit_reached
            # event: record it again. The error translation kept the call on its
            # connection already; an error it did not see (QuotaExceeded.from_verdict,
            # TOLLGATE_TRANSLATE_ERRORS = False) is kept here. A transaction the
            # middleware opened is still open: __call__ notes it after closing it.
            try:
                blocked(connections[database_alias()], err)
                note_pending()
            except Exception:  # never hide the 402
                logger.exception("tollgate: could not record the limit_reached event of %s", err.feature)
            return quota_exceeded_response(request, err)
        return None


class _ViewFailed(Exception):
    """Stands for the view's exception when the middleware rolls its transaction back after the 402 or 500."""


def tollgate_exempt(view):
    """Marks a view the middleware never gates (its route stays gated for other views)."""
    view.tollgate_exempt = True
    return view
