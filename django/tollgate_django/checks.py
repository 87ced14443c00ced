"""System checks (``manage.py check``): what would make gating fail or let requests through.

tollgate.E001  the tollgate database (TOLLGATE_DATABASE) is not PostgreSQL, or not in DATABASES
tollgate.E002  TollgateMiddleware comes before AuthenticationMiddleware (it would see every user as anonymous)
tollgate.E003  TOLLGATE_CUSTOMER (or a dotted TOLLGATE_ANONYMOUS) cannot be imported, or is not callable
tollgate.E004  TOLLGATE_ANONYMOUS is not "allow", "block", a callable or a dotted path
tollgate.E005  TOLLGATE_ADMIN_DATABASE is not in DATABASES, or not PostgreSQL
tollgate.E006  TOLLGATE_IDEMPOTENCY_HEADER is not None, True or a header name
tollgate.W001  routes exist and DRF authenticates with tokens (token, basic, JWT), while TOLLGATE_ANONYMOUS
               is "allow": a route on a plain Django view sees those requests as anonymous and lets them
               through unmetered (DRF views are gated after DRF's authentication). A database check: it runs
               with ``manage.py check --database default`` and before ``migrate``.
"""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import connections
from django.utils.module_loading import import_string

from .conf import tollgate_settings

MIDDLEWARE = "tollgate_django.TollgateMiddleware"
MIDDLEWARE_PATHS = {MIDDLEWARE, "tollgate_django.middleware.TollgateMiddleware"}
AUTHENTICATION_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"

# DRF authentication classes that read the request itself (a header), so Django's middleware never sees the user
SESSION_AUTHENTICATION = {"rest_framework.authentication.SessionAuthentication"}


def _alias():
    return tollgate_settings.DATABASE or "default"


@register()
def check_database(app_configs=None, **kwargs):
    alias = _alias()
    if alias not in settings.DATABASES:
        return [Error("TOLLGATE_DATABASE is %r, which is not in DATABASES" % alias, id="tollgate.E001",
                      hint="Set TOLLGATE_DATABASE to the alias of the database where `tollgate migrate` ran.")]
    if connections[alias].vendor != "postgresql":
        return [Error("the tollgate database %r uses %s, not PostgreSQL" % (alias, settings.DATABASES[alias].get("ENGINE")),
                      id="tollgate.E001",
                      hint="tollgate lives in PostgreSQL: use django.db.backends.postgresql (or a backend based on it).")]
    return []


@register()
def check_admin_database(app_configs=None, **kwargs):
    alias = tollgate_settings.ADMIN_DATABASE
    if alias is None:
        return []
    if alias not in settings.DATABASES:
        return [Error("TOLLGATE_ADMIN_DATABASE is %r, which is not in DATABASES" % (alias,), id="tollgate.E005",
                      hint="Set it to the alias of a database user that is a member of tollgate_admin, or remove "
                           "it to use TOLLGATE_DATABASE.")]
    if connections[alias].vendor != "postgresql":
        return [Error("the tollgate admin database %r uses %s, not PostgreSQL"
                      % (alias, settings.DATABASES[alias].get("ENGINE")), id="tollgate.E005")]
    return []


@register()
def check_idempotency_header(app_configs=None, **kwargs):
    header = tollgate_settings.IDEMPOTENCY_HEADER
    if header is None or isinstance(header, bool) or (isinstance(header, str) and header.strip()):
        return []
    return [Error("TOLLGATE_IDEMPOTENCY_HEADER is %r" % (header,), id="tollgate.E006",
                  hint='Use True (the "Idempotency-Key" header), a header name such as "X-Request-Id", or None.')]


@register()
def check_middleware(app_configs=None, **kwargs):
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    ours = [i for i, path in enumerate(middleware) if path in MIDDLEWARE_PATHS]
    if not ours or AUTHENTICATION_MIDDLEWARE not in middleware:
        return []
    if ours[0] < middleware.index(AUTHENTICATION_MIDDLEWARE):
        return [Error("%s comes before %s in MIDDLEWARE" % (MIDDLEWARE, AUTHENTICATION_MIDDLEWARE), id="tollgate.E002",
                      hint="Move it after AuthenticationMiddleware: before it, every request has no user and "
                           "routes cannot be metered per customer.")]
    return []


def _importable(name, value, kinds):
    if not isinstance(value, str):
        if value is not None and not callable(value):
            return [Error("%s is %r, not %s" % (name, value, kinds), id="tollgate.E003")]
        return []
    try:
        found = import_string(value)
    except ImportError as exc:
        return [Error("%s = %r cannot be imported: %s" % (name, value, exc), id="tollgate.E003",
                      hint="A dotted path to a function, such as 'myapp.tollgate.customer'.")]
    if not callable(found):
        return [Error("%s = %r is not callable" % (name, value), id="tollgate.E003")]
    return []


@register()
def check_callables(app_configs=None, **kwargs):
    errors = _importable("TOLLGATE_CUSTOMER", tollgate_settings.CUSTOMER, "a callable or a dotted path")
    anonymous = tollgate_settings.ANONYMOUS
    if anonymous in ("allow", "block") or callable(anonymous):
        return errors
    if isinstance(anonymous, str) and "." in anonymous:
        return errors + _importable("TOLLGATE_ANONYMOUS", anonymous, "a callable or a dotted path")
    return errors + [Error('TOLLGATE_ANONYMOUS is %r: use "allow", "block", a callable or a dotted path to one'
                           % (anonymous,), id="tollgate.E004")]


def token_authentication_classes():
    """The DRF authentication classes of REST_FRAMEWORK that are not session-based (tokens, basic, JWT)."""
    try:
        from rest_framework.settings import api_settings
    except ImportError:
        return []
    found = []
    for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        path = "%s.%s" % (cls.__module__, cls.__qualname__)
        if path not in SESSION_AUTHENTICATION:
            found.append(path)
    return found


@register(Tags.database)
def check_routes_with_token_authentication(app_configs=None, databases=None, **kwargs):
    alias = _alias()
    if not databases or alias not in databases or tollgate_settings.ANONYMOUS != "allow":
        return []
    tokens = token_authentication_classes()
    if not tokens:
        return []
    from .db import routes

    try:
        found = routes(using=alias)
    except Exception:  # no tollgate schema yet: `migrate` runs this before tollgate is there
        return []
    if not found:
        return []
    return [Warning(
        "%d route(s) of tollgate.yaml are gated while DRF authenticates with %s and TOLLGATE_ANONYMOUS is "
        '"allow"' % (len(found), ", ".join(tokens)), id="tollgate.W001",
        hint="TollgateMiddleware gates routes of DRF views after DRF's authentication, but a route on a plain "
             "Django view only sees Django's session user: requests authenticated by a token are anonymous "
             'there and pass unmetered. Set TOLLGATE_ANONYMOUS = "block", or serve those routes with DRF views.')]
