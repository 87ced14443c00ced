"""Template tags: ``{% load tollgate %}``.

``{% tollgate_usage "api_calls" %}`` renders "80 of 100 API calls used" for
the request's customer ("12 API calls used" when unlimited; nothing without a
customer; "80 of 100 API calls used, 50 more granted" while grants or top-up
packs are left). ``{% tollgate_verdicts as rows %}`` gives every feature's Verdict
for your own markup, and ``{{ verdict|tollgate_usage_text }}`` the same
sentence for one of them. Feature names read as words ("api_calls" ->
"API calls"); TOLLGATE_FEATURE_LABELS = {"api_calls": "API calls"} names them
yourself. Pass ``customer=...`` to show another customer.

``{% tollgate_upgrade_url "api_calls" %}`` is where an upgrade button for a
feature should point: the customer's signed upgrade link (one click to Stripe
Checkout) when the sidecar has links on, else TOLLGATE_UPGRADE_URL.
"""

from django import template

from ..conf import tollgate_settings
from ..db import check, usage
from ..http import resolve_customer, upgrade_url

register = template.Library()

_ACRONYMS = {"api", "sms", "ai", "pdf", "csv", "url", "gpu", "cpu"}


def feature_label(feature):
    labels = tollgate_settings.FEATURE_LABELS or {}
    if feature in labels:
        return labels[feature]
    words = feature.replace("_", " ").replace("-", " ").split()
    return " ".join(w.upper() if w.lower() in _ACRONYMS else w for w in words)


@register.filter(name="tollgate_usage_text")
def usage_text(verdict):
    label = feature_label(verdict.feature)
    if verdict.quota is None:
        return "%s %s used" % (verdict.used, label)
    text = "%s of %s %s used" % (verdict.used, verdict.quota, label)
    granted = getattr(verdict, "granted", None)
    if granted:
        text += ", %s more granted" % granted
    return text


def _customer(context, customer):
    if customer is not None:
        return str(customer)
    request = context.get("request")
    return resolve_customer(request) if request is not None else None


@register.simple_tag(takes_context=True)
def tollgate_usage(context, feature, customer=None):
    key = _customer(context, customer)
    if key is None:
        return ""
    return usage_text(check(key, feature))


@register.simple_tag(takes_context=True)
def tollgate_verdicts(context, customer=None):
    key = _customer(context, customer)
    if key is None:
        return []
    return usage(key)


@register.simple_tag(takes_context=True)
def tollgate_upgrade_url(context, feature, customer=None):
    return upgrade_url(_customer(context, customer), feature)
