"""Settings of tollgate's Django test project.

The database comes from TOLLGATE_DJANGO_DATABASE_URL, a postgres:// URL of a
throwaway database where tollgate is migrated and configured (django_test.go
makes one), for a login role that is a member of tollgate_app;
TOLLGATE_DJANGO_ADMIN_URL is the same database for a login role that is a
member of tollgate_admin (the alias "admin"). The tests run
in that database as it is (testproject.runner), so never point it at a
database you care about.
"""

import os
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

DATABASE_URL_ENV = "TOLLGATE_DJANGO_DATABASE_URL"
ADMIN_URL_ENV = "TOLLGATE_DJANGO_ADMIN_URL"


def database_from_url(url):
    """Django's DATABASES entry for a postgres:// URL (query parameters become libpq options)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured("%s must be a postgres:// URL" % DATABASE_URL_ENV)
    options = dict(parse_qsl(parts.query))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": options.pop("host", None) or parts.hostname or "",
        "PORT": str(options.pop("port", None) or parts.port or ""),
        "OPTIONS": options,
        "ATOMIC_REQUESTS": False,  # tests turn it on where they need it
    }


try:
    import rest_framework  # noqa: F401

    HAVE_DRF = True
except ImportError:
    HAVE_DRF = False

for env in (DATABASE_URL_ENV, ADMIN_URL_ENV):
    if not os.environ.get(env):
        raise ImproperlyConfigured(
            "%s is not set: run these tests with `go test ./tests/django/`, which makes the database" % env)

SECRET_KEY = "tollgate-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "tollgate_django",
    "demo",
] + (["rest_framework", "rest_framework.authtoken"] if HAVE_DRF else [])

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tollgate_django.TollgateMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

DATABASES = {
    "default": database_from_url(os.environ[DATABASE_URL_ENV]),
    # the same database as a login role that is only a member of tollgate_admin, as a support tool connects:
    # grant(), set_override() and the management commands go through it (TOLLGATE_ADMIN_DATABASE). It owns
    # none of Django's tables: the runner never migrates it, and the router keeps Django's flush away from it.
    "admin": dict(database_from_url(os.environ[ADMIN_URL_ENV]), TEST={"MIGRATE": False}),
    # only for the system check that the tollgate database is PostgreSQL (tollgate.E001); never connected to
    "sqlite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}

DATABASE_ROUTERS = ["testproject.runner.AdminAliasRouter"]

TEST_RUNNER = "testproject.runner.ExistingDatabaseRunner"

TOLLGATE_UPGRADE_URL = "https://acme.test/pricing"
TOLLGATE_ADMIN_DATABASE = "admin"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # token auth as API products use it: Django's middleware sees these requests as anonymous
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}
