"""A test runner that uses the configured database as it is.

Django's runner creates a test database (CREATE DATABASE test_...), which
tollgate's app role may not do, and which would lack tollgate's schema and
configuration. This runner migrates the Django apps into the database the
settings name and leaves it there: django_test.go makes a fresh one per run
and drops it afterwards. The tests are TransactionTestCases, which commit for
real and empty the Django tables after each test (tollgate's own tables are
not Django's and keep their rows; each test uses customers of its own).
"""

from django.conf import settings
from django.core.management import call_command
from django.test.runner import DiscoverRunner


class ExistingDatabaseRunner(DiscoverRunner):
    def setup_databases(self, aliases=None, **kwargs):
        for alias in aliases or ["default"]:
            if settings.DATABASES[alias].get("TEST", {}).get("MIGRATE", True) is False:
                continue  # the admin alias: a user of tollgate_admin, who owns none of Django's tables
            call_command("migrate", database=alias, interactive=False, verbosity=max(self.verbosity - 1, 0))
        return None

    def teardown_databases(self, old_config, **kwargs):
        pass


class AdminAliasRouter:
    """Django's tables live in "default" only: nothing is migrated to, or flushed through, the alias "admin".

    A TransactionTestCase that uses "admin" (databases = {"default", "admin"}) flushes each of its
    aliases after each test; through "admin" (a member of tollgate_admin only) that finds no table to empty.
    """

    def allow_migrate(self, db, app_label, **hints):
        return False if db == "admin" else None
