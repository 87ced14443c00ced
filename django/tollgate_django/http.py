"""What a gate does with a request: find the customer, answer 402, add the headers."""

import datetime
import hashlib
import logging

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape
from django.utils.module_loading import import_string

from .conf import tollgate_settings
from .errors import IdempotencyKeyError, InvalidArgument

REMAINING_HEADER = "X-Tollgate-Remaining"
RESET_HEADER = "X-Tollgate-Reset"
GRANTED_HEADER = "X-Tollgate-Granted"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
DEFAULT_TEMPLATE = "tollgate/quota_exceeded.html"

logger = logging.getLogger("tollgate_django")

_customer_functions = {}


def _customer_function(path):
    fn = _customer_functions.get(path)
    if fn is None:
        fn = _customer_functions[path] = import_string(path)
    return fn


def _django_request(request):
    """Django's HttpRequest, also when request is a DRF Request wrapping it."""
    return getattr(request, "_request", request)


def resolve_customer(request, customer=None):
    """The customer key of request as text, or None (the request is then not metered).

    customer: a callable of the request, or a dotted path to one; without it
    the TOLLGATE_CUSTOMER setting (a dotted path), else the authenticated
    user's primary key.
    """
    if customer is None:
        customer = tollgate_settings.CUSTOMER
    if isinstance(customer, str):
        customer = _customer_function(customer)
    if customer is not None:
        key = customer(request)
    else:
        user = getattr(request, "user", None)
        key = user.pk if user is not None and user.is_authenticated else None
    if key is None or key == "":
        return None
    return str(key)


ALLOW, BLOCK = "allow", "block"


def anonymous_policy():
    """TOLLGATE_ANONYMOUS: "allow", "block", or a callable (request, feature) -> key, None or a response."""
    policy = tollgate_settings.ANONYMOUS
    if policy in (ALLOW, BLOCK) or callable(policy):
        return policy
    if isinstance(policy, str) and "." in policy:
        return _customer_function(policy)
    raise ValueError('TOLLGATE_ANONYMOUS is "allow", "block", a callable or a dotted path to one, not %r' % (policy,))


def customer_for(request, feature, customer=None):
    """The customer a gate of feature meters request for: (key, None), (None, None) or (None, response).

    (key, None): meter key. (None, None): let the request through unmetered
    (TOLLGATE_ANONYMOUS = "allow", or its callable returned None). (None,
    response): answer response instead of running the view ("block": 401 JSON,
    or a redirect to the login page for browsers; or the callable's response).
    """
    key = resolve_customer(request, customer)
    if key is not None:
        return key, None
    policy = anonymous_policy()
    if policy == ALLOW:
        return None, None
    if policy == BLOCK:
        return None, customer_required_response(request, feature)
    result = policy(request, feature)
    if isinstance(result, HttpResponseBase):
        return None, result
    if result is None or result == "":
        return None, None
    return str(result), None


def customer_required_response(request, feature):
    """What TOLLGATE_ANONYMOUS = "block" answers: 401 JSON, or the login page for a browser."""
    if wants_html(request):
        from django.contrib.auth.views import redirect_to_login

        return redirect_to_login(request.get_full_path())
    return JsonResponse({"error": "customer_required", "feature": feature,
                         "message": "Sign in to use this feature."}, status=401)


def idempotency_header():
    """The header TOLLGATE_IDEMPOTENCY_HEADER names: 'Idempotency-Key' for True, a name, or None when off."""
    setting = tollgate_settings.IDEMPOTENCY_HEADER
    if setting is True:
        return IDEMPOTENCY_HEADER
    if isinstance(setting, str) and setting.strip():
        return setting.strip()
    if setting in (None, False):
        return None
    raise ValueError("TOLLGATE_IDEMPOTENCY_HEADER is True, a header name or None, not %r" % (setting,))


def idempotency_key(request, feature, spec=None):
    """The idempotency key a gate of feature uses for request, or None: the request counts as usual.

    spec: the gate's ``idempotency_key`` option, a callable of the request (or a
    dotted path to one) returning the key or None; False: no key; None: the
    header TOLLGATE_IDEMPOTENCY_HEADER names, when set and present. The key is
    the client's, checked here (1 to 255 characters, no control characters:
    else IdempotencyKeyError); what tollgate stores is scoped to the feature
    (``gate_key``), so one key on a request that several features meter
    counts each once.
    """
    if spec is False:
        return None
    if spec is None:
        header = idempotency_header()
        raw = _django_request(request).headers.get(header) if header else None
    else:
        if isinstance(spec, str):
            spec = _customer_function(spec)
        raw = spec(request)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raw = str(raw)
    if raw == "" or len(raw) > MAX_KEY_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise IdempotencyKeyError(
            "an idempotency key must be 1 to %d characters without control characters (%d given)"
            % (MAX_KEY_LENGTH, len(raw)), feature=feature)
    return gate_key(feature, raw)


def gate_key(feature, key):
    """What a gate of feature stores for the client's key: 'feature:key' (a digest of the key when too long)."""
    scoped = "%s:%s" % (feature, key)
    if len(scoped) <= MAX_KEY_LENGTH:
        return scoped
    return "%s:sha256:%s" % (feature, hashlib.sha256(key.encode("utf-8")).hexdigest())


def charge(request, customer, feature, amount, using=None, key=None):
    """Consumes amount of feature for customer once per request: the Verdict.

    The first gate of a request that meters a customer and feature consumes;
    every later gate of the same request for them (a route and @gate on the same
    view, a DRF permission checked again) gets the first one's Verdict, and counts
    nothing. The Verdict is also kept for the response's headers.

    key (``idempotency_key``): the keyed consume, so that a request retried with
    the same key counts once; tollgate refusing the key (TG422: used for another
    amount) raises IdempotencyKeyError. Inside a transaction the keyed call runs
    in a savepoint, so the refusal leaves the transaction usable.
    """
    plain = _django_request(request)
    charged = getattr(plain, "_tollgate_charged", None)
    if charged is None:
        charged = plain._tollgate_charged = {}
    verdict = charged.get((customer, feature))
    if verdict is None:
        verdict = charged[(customer, feature)] = _consume(customer, feature, amount, using, key)
        remember(plain, verdict)
    return verdict


def _consume(customer, feature, amount, using, key):
    from django.db import connections, transaction

    from .db import consume, database_alias

    if key is None:
        return consume(customer, feature, amount, using=using)
    alias = using or database_alias()
    try:
        if connections[alias].in_atomic_block:
            with transaction.atomic(using=alias):
                return consume(customer, feature, amount, idempotency_key=key, using=alias)
        return consume(customer, feature, amount, idempotency_key=key, using=alias)
    except InvalidArgument as err:
        if not (_positive(amount) and 0 < len(customer) <= MAX_KEY_LENGTH):
            raise  # not the key's fault: as without a key
        # the arguments are valid and the key was checked: tollgate refused it as used for another amount
        raise IdempotencyKeyError(err.message, feature=feature, reused=True, detail=err.detail,
                                  hint=err.hint) from err


def _positive(amount):
    return isinstance(amount, int) and not isinstance(amount, bool) and amount > 0


def idempotency_key_payload(err):
    """The JSON body of the 422 a gate answers for an IdempotencyKeyError."""
    return {
        "error": "idempotency_key_reused" if err.reused else "invalid_idempotency_key",
        "feature": err.feature,
        "message": err.message,
    }


def idempotency_key_response(request, err):
    """HTTP 422 for an IdempotencyKeyError (a malformed key, or one used for another amount)."""
    return JsonResponse(idempotency_key_payload(err), status=422)


def isoformat(value):
    """An aware datetime as ISO 8601 in UTC ('2025-01-31T12:00:00Z'), None as None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def annotate(response, verdict):
    """Adds X-Tollgate-Remaining, X-Tollgate-Reset and X-Tollgate-Granted for a limited verdict.

    Unlimited verdicts add nothing. When several gates ran, the lowest
    remaining wins. X-Tollgate-Granted (granted units left beyond the quota)
    only when there are some.
    """
    if verdict.remaining is None:
        return response
    current = response.get(REMAINING_HEADER)
    if current is not None:
        try:
            if int(current) <= verdict.remaining:
                return response
        except ValueError:
            pass
    response[REMAINING_HEADER] = str(verdict.remaining)
    if verdict.resets_at is not None:
        response[RESET_HEADER] = isoformat(verdict.resets_at)
    elif RESET_HEADER in response:
        del response[RESET_HEADER]
    if verdict.granted:
        response[GRANTED_HEADER] = str(verdict.granted)
    elif GRANTED_HEADER in response:
        del response[GRANTED_HEADER]
    return response


def remember(request, verdict):
    """Keeps verdict on the request, for TollgateMiddleware to put in the response's headers."""
    request = getattr(request, "_request", request)  # a DRF Request wraps Django's
    verdicts = getattr(request, "_tollgate_verdicts", None)
    if verdicts is None:
        verdicts = request._tollgate_verdicts = []
    verdicts.append(verdict)


def remembered(request):
    return getattr(request, "_tollgate_verdicts", ())


def upgrade_url(customer=None, feature=None, using=None):
    """Where a customer's upgrade prompt for feature links to: their signed upgrade link (one click to Stripe
    Checkout, attributed exactly) when the sidecar has links on, else TOLLGATE_UPGRADE_URL.

    Without a customer or a feature, or when the link cannot be had (links off, the connection is in a
    failed transaction, a database error), the static TOLLGATE_UPGRADE_URL. Never raises.
    """
    static = tollgate_settings.UPGRADE_URL
    if not customer or not feature:
        return static
    try:
        link = _upgrade_link(str(customer), feature, using)
    except Exception:  # the 402 must go out whatever happens to the link
        logger.warning("tollgate: no upgrade link for %s of customer %s; using TOLLGATE_UPGRADE_URL", feature,
                       customer, exc_info=True)
        return static
    return link or static


def _upgrade_link(customer, feature, using):
    from django.db import connections, transaction

    from .db import database_alias, upgrade_link

    alias = using or database_alias()
    connection = connections[alias]
    if connection.needs_rollback:
        return None  # inside a transaction an error broke: no query can run before its rollback
    if connection.in_atomic_block:
        with transaction.atomic(using=alias):  # a savepoint: a failure leaves the transaction usable
            return upgrade_link(customer, feature, using=alias)
    return upgrade_link(customer, feature, using=alias)


def payload(blocked):
    """The JSON body of a 402 for a QuotaExceeded or a blocked Verdict."""
    message = getattr(blocked, "upgrade_message", None) or getattr(blocked, "message", None)
    return {
        "error": "quota_exceeded",
        "feature": blocked.feature,
        "message": message,
        "upgrade_url": upgrade_url(getattr(blocked, "customer", None), blocked.feature),
        "used": blocked.used,
        "quota": blocked.quota,
        "resets_at": isoformat(blocked.resets_at),
    }


def wants_html(request):
    """True when the client names text/html before application/json in Accept (a browser).

    Clients that send no Accept header or only */* (curl, fetch, test
    clients) get JSON.
    """
    accept = request.META.get("HTTP_ACCEPT", "")
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            return True
        if media == "application/json":
            return False
    return False


def quota_exceeded_response(request, blocked):
    """HTTP 402 for a QuotaExceeded or a blocked Verdict: JSON, or a small page for browsers."""
    body = payload(blocked)
    if wants_html(request):
        from .templatetags.tollgate import feature_label

        template = tollgate_settings.TEMPLATE or DEFAULT_TEMPLATE
        resets_at = blocked.resets_at
        context = {
            "tollgate": body,
            "feature_label": feature_label(blocked.feature) if blocked.feature else "",
            # an aware datetime in the current time zone, for the date filter ({{ resets_at|date }})
            "resets_at": timezone.localtime(resets_at) if resets_at is not None and timezone.is_aware(resets_at)
            else resets_at,
        }
        try:
            html = render_to_string(template, context, request=request)
        except TemplateDoesNotExist:  # tollgate_django is not in INSTALLED_APPS
            html = "<!doctype html><title>Upgrade to continue</title><p>%s</p>" % escape(body["message"] or "")
            if body["upgrade_url"]:
                html += '<p><a href="%s">Upgrade</a></p>' % escape(body["upgrade_url"])
        response = HttpResponse(html, status=402, content_type="text/html; charset=utf-8")
    else:
        response = JsonResponse(body, status=402)
    if body["quota"] is not None:
        response[REMAINING_HEADER] = "0"
        if body["resets_at"] is not None:
            response[RESET_HEADER] = body["resets_at"]
    return response
