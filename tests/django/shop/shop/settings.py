"""Settings of an app that uses tollgate, as its README says; the database comes from the environment.

SHOP_DATABASE_URL names a database the app's user may connect to; `manage.py test` creates test_<name>
next to it (the user needs CREATEDB), and TollgateTestRunner installs tollgate there with the CLI
(TOLLGATE_COMMAND, from SHOP_TOLLGATE_COMMAND here).
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

url = urlsplit(os.environ["SHOP_DATABASE_URL"])
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": unquote(url.path.lstrip("/")),
    "USER": unquote(url.username or ""),
    "PASSWORD": unquote(url.password or ""),
    "HOST": url.hostname or "",
    "PORT": str(url.port or ""),
}}

SECRET_KEY = "shop-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "shop.urls"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "tollgate_django",
    "notes",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tollgate_django.TollgateMiddleware",
]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]

TEST_RUNNER = "tollgate_django.testing.TollgateTestRunner"
TOLLGATE_CONFIG = BASE_DIR / "tollgate.yaml"
TOLLGATE_COMMAND = os.environ.get("SHOP_TOLLGATE_COMMAND", "tollgate")
TOLLGATE_UPGRADE_URL = "https://shop.test/pricing"
