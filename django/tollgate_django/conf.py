"""Every TOLLGATE_* setting, its default and its meaning: the one place they are read.

Read a setting with ``tollgate_settings.NAME`` (without the prefix): the
value of ``settings.TOLLGATE_NAME`` when the project sets it, else the default
below. Values are read on every access, so ``override_settings`` works.
"""

from django.conf import settings

#: name -> (default, meaning); django/README.md has the same table.
DEFAULTS = {
    "DATABASE": ("default", "the database alias where the tollgate schema lives"),
    "ADMIN_DATABASE": (None, "the database alias of grant(), set_override(), clear_override(), customer_summary() "
                             "and the tollgate_grant / tollgate_override commands, whose user is a member of "
                             "tollgate_admin; None: TOLLGATE_DATABASE"),
    "IDEMPOTENCY_HEADER": (None, "the request header whose value makes the middleware's routes, @gate and the DRF "
                                 "permission count a request once per key: True for 'Idempotency-Key', or a header "
                                 "name; None: off (a gate's idempotency_key= callable still works)"),
    "CUSTOMER": (None, "dotted path to (or a callable) request -> customer key (text, or None); "
                       "None: the authenticated user's pk"),
    "ANONYMOUS": ("block", 'what a gate does with a request that has no customer: "block" (401 JSON, or '
                           'the login page for browsers), "allow" (let it through, not metered), or a '
                           "dotted path to (or a callable) (request, feature) -> customer key, None to "
                           "allow, or an HttpResponse to answer"),
    "UPGRADE_URL": (None, "the static pricing page: upgrade_url of the 402 body and the page's button when the "
                          "sidecar's signed upgrade links are off (tollgate.upgrade_link answers NULL) or fail"),
    "ROUTES_CACHE_SECONDS": (30, "how long the middleware keeps tollgate.routes(); 0 reads it on every request"),
    "TEMPLATE": ("tollgate/quota_exceeded.html", "the 402 page for browsers"),
    "FEATURE_LABELS": ({}, '{"api_calls": "API calls"}: how features read on the 402 page and in the '
                           "template tags"),
    "TRANSLATE_ERRORS": (True, "raise QuotaExceeded & co. from every query (a row gate's trigger)"),
    "ASYNC_COMMIT": (False, "a gate that runs in autocommit commits its own transaction with "
                            "synchronous_commit = off (see Cost)"),
    "CONFIG": ("tollgate.yaml", "tollgate.yaml, for the test database (tollgate_django.testing)"),
    "COMMAND": ("tollgate", "the tollgate CLI (a path, or a list such as ['go', 'run', './cmd/tollgate']), "
                            "for the test database"),
}


class _Settings:
    def __getattr__(self, name):
        try:
            default = DEFAULTS[name][0]
        except KeyError:
            raise AttributeError("no tollgate setting %s" % name) from None
        return getattr(settings, "TOLLGATE_" + name, default)

    def is_set(self, name):
        return hasattr(settings, "TOLLGATE_" + name)


tollgate_settings = _Settings()
