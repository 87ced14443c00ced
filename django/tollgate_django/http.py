"""What a gate does with a request: find the customer, answer 402, add the headers."""

import datetime

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape
from django.utils.module_loading import import_string

from .conf import tollgate_settings

REMAINING_HEADER = "X-Tollgate-Remaining"
RESET_HEADER = "X-Tollgate-Reset"
DEFAULT_TEMPLATE = "tollgate/quota_exceeded.html"

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


def charge(request, customer, feature, amount, using=None):
    """Consumes amount of feature for customer once per request: the Verdict.

    The first gate of a request that meters a customer and feature consumes;
    every later gate of the same request for them (a route and @gate on the same
    view, a DRF permission checked again) gets the first one's Verdict, and counts
    nothing. The Verdict is also kept for the response's headers.
    """
    from .db import consume

    plain = _django_request(request)
    charged = getattr(plain, "_tollgate_charged", None)
    if charged is None:
        charged = plain._tollgate_charged = {}
    verdict = charged.get((customer, feature))
    if verdict is None:
        verdict = charged[(customer, feature)] = consume(customer, feature, amount, using=using)
        remember(plain, verdict)
    return verdict


def isoformat(value):
    """An aware datetime as ISO 8601 in UTC ('2025-01-31T12:00:00Z'), None as None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def annotate(response, verdict):
    """Adds X-Tollgate-Remaining and X-Tollgate-Reset for a limited verdict.

    Unlimited verdicts add nothing. When several gates ran, the lowest
    remaining wins.
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


def upgrade_url():
    return tollgate_settings.UPGRADE_URL


def payload(blocked):
    """The JSON body of a 402 for a QuotaExceeded or a blocked Verdict."""
    message = getattr(blocked, "upgrade_message", None) or getattr(blocked, "message", None)
    return {
        "error": "quota_exceeded",
        "feature": blocked.feature,
        "message": message,
        "upgrade_url": upgrade_url(),
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
