"""What a gate does with a request: find the customer, answer 402, add the headers."""

import datetime

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.module_loading import import_string

REMAINING_HEADER = "X-Tollgate-Remaining"
RESET_HEADER = "X-Tollgate-Reset"
DEFAULT_TEMPLATE = "tollgate/quota_exceeded.html"

_customer_functions = {}


def _customer_function(path):
    fn = _customer_functions.get(path)
    if fn is None:
        fn = _customer_functions[path] = import_string(path)
    return fn


def resolve_customer(request, customer=None):
    """The customer key of request as text, or None (the request is then not metered).

    customer: a callable of the request, or a dotted path to one; without it
    the TOLLGATE_CUSTOMER setting (a dotted path), else the authenticated
    user's primary key.
    """
    if customer is None:
        customer = getattr(settings, "TOLLGATE_CUSTOMER", None)
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
    return getattr(settings, "TOLLGATE_UPGRADE_URL", None)


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
        template = getattr(settings, "TOLLGATE_TEMPLATE", None) or DEFAULT_TEMPLATE
        try:
            html = render_to_string(template, {"tollgate": body}, request=request)
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
