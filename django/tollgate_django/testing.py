"""Testing an app that uses tollgate, with Django's own test runner.

    # settings.py
    TEST_RUNNER = "tollgate_django.testing.TollgateTestRunner"
    TOLLGATE_CONFIG = BASE_DIR / "tollgate.yaml"      # the default: ./tollgate.yaml
    TOLLGATE_COMMAND = "tollgate"                     # the CLI, on PATH by default

``manage.py test`` then creates the test database as usual (Django's database
user needs CREATEDB) and, before the app's migrations run (a row gate's
migration needs tollgate's functions and features), installs tollgate in it
with the CLI: ``tollgate migrate`` and ``tollgate apply TOLLGATE_CONFIG``, as
Django's database user, who owns the test database. With ``--keepdb`` the
kept database is migrated, re-applied and its usage reset. ``--parallel``
clones it with tollgate inside.

Between tests: a ``TestCase`` rolls tollgate's usage back with everything
else. A ``TransactionTestCase`` empties Django's tables after each test
(flush); the runner then resets tollgate's usage too (every table of schema
tollgate but the configuration that ``tollgate apply`` writes): no usage,
customers, events or emails carry over to the next test. ``reset_usage()``
does it by hand.

Helpers: ``set_plan`` / ``plan`` (a customer on a plan, as a Stripe
subscription would put them), ``set_usage`` / ``usage_of``, and the mixin
``TollgateAssertions`` (``assertBlocked``, ``assertAllowed``, ``assertUsage``).
"""

import contextlib
import os
import shlex
import shutil
import subprocess

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.test.runner import DiscoverRunner

from . import db as _db
from .conf import tollgate_settings
from .errors import QuotaExceeded

# Tables that `tollgate apply` and the migrations write: kept by reset_usage. Every other table of schema
# tollgate holds what customers did or got (usage, customers, subscriptions, events, emails, overrides, grants,
# idempotency keys, ...) and is emptied.
CONFIGURATION_TABLES = ("settings", "plans", "features", "limits", "routes", "topups", "config_state")

_state_global = {"testing": False}


def testing():
    """True while TollgateTestRunner runs the tests (its database hooks are on)."""
    return _state_global["testing"]


# ---------------------------------------------------------------------------------------------------------
# installing tollgate in the test database


def _command():
    command = tollgate_settings.COMMAND
    argv = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    if not argv:
        raise ImproperlyConfigured("TOLLGATE_COMMAND is empty")
    if shutil.which(argv[0]) is None:
        raise ImproperlyConfigured(
            "tollgate_django.testing installs tollgate in the test database with the tollgate CLI, and %r is not "
            "there: put tollgate on PATH (make build writes bin/tollgate) or set TOLLGATE_COMMAND" % argv[0])
    return argv


def _quote(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def connection_dsn(alias):
    """A libpq keyword/value string for the database of alias, as Django connects to it."""
    settings_dict = connections[alias].settings_dict
    parts = {"dbname": settings_dict["NAME"], "user": settings_dict.get("USER"),
             "password": settings_dict.get("PASSWORD"), "host": settings_dict.get("HOST"),
             "port": settings_dict.get("PORT")}
    for key, value in (settings_dict.get("OPTIONS") or {}).items():
        if key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name",
                   "target_session_attrs", "service", "passfile"):
            parts[key] = value
    return " ".join("%s=%s" % (key, _quote(value)) for key, value in parts.items() if value not in (None, ""))


def _run(argv, alias, verbosity):
    env = dict(os.environ, DATABASE_URL=connection_dsn(alias))  # the password stays out of argv
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if verbosity >= 2 or done.returncode != 0:
        print(done.stdout, end="")
    if done.returncode != 0:
        raise ImproperlyConfigured("%s failed (exit %d) in the test database %r: see its output above"
                                   % (" ".join(argv[:3]), done.returncode, connections[alias].settings_dict["NAME"]))


def install_tollgate(alias=None, verbosity=1):
    """Installs tollgate in the database of alias: ``tollgate migrate``, ``tollgate apply``, then reset_usage.

    Runs the CLI (TOLLGATE_COMMAND) as Django's user of that database, which
    must be allowed to create schemas there (the owner of a test database is).
    The roles tollgate_app and tollgate_sidecar are cluster-wide: when no
    database of the cluster has them yet, the user needs CREATEROLE too.
    """
    alias = alias or _db.database_alias()
    command = _command()
    config = os.fspath(tollgate_settings.CONFIG)
    if not os.path.exists(config):
        raise ImproperlyConfigured("TOLLGATE_CONFIG: %s does not exist (the app's tollgate.yaml)" % config)
    if verbosity >= 1:
        print("Installing tollgate in the test database (%s migrate, apply %s)..." % (command[-1], config))
    _run(command + ["migrate"], alias, verbosity)
    _run(command + ["apply", config], alias, verbosity)
    connections[alias].close()  # a fresh session sees the new schema
    reset_usage(alias)


def reset_usage(using=None):
    """Empties what customers did in tollgate (usage, customers, subscriptions, events, emails, overrides,
    grants, idempotency keys, ...).

    Keeps the configuration (plans, features, limits, routes, top-up packs, settings).
    Needs the rights of tollgate's owner: in a test database made by
    TollgateTestRunner that is Django's user. Also forgets blocked calls still
    waiting to be noted on the connection.
    """
    alias = using or _db.database_alias()
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                       "ON n.oid = c.relnamespace WHERE n.nspname = 'tollgate' AND c.relkind IN ('r', 'p') "
                       "AND NOT c.relispartition AND c.relname <> ALL (%s) ORDER BY 1", [list(CONFIGURATION_TABLES)])
        tables = [row[0] for row in cursor.fetchall()]
        if tables:
            cursor.execute("TRUNCATE %s RESTART IDENTITY" % ", ".join(
                "tollgate.%s" % connection.ops.quote_name(t) for t in tables))
    setattr(connection, _db._PENDING, {})


def _pre_migrate(sender, using=None, verbosity=1, **kwargs):
    if testing() and using == _db.database_alias():
        install_tollgate(using, verbosity=verbosity)


def _post_migrate(sender, using=None, **kwargs):
    # After the migrations of a new test database, and after each flush of a TransactionTestCase.
    if testing() and using == _db.database_alias():
        reset_usage(using)


class TollgateTestRunner(DiscoverRunner):
    """Django's DiscoverRunner, with tollgate installed in the test database and reset after each flush."""

    def setup_test_environment(self, **kwargs):
        _state_global["testing"] = True
        super().setup_test_environment(**kwargs)

    def teardown_test_environment(self, **kwargs):
        super().teardown_test_environment(**kwargs)
        _state_global["testing"] = False


@contextlib.contextmanager
def tollgate_test_databases():
    """Turns the runner's database hooks on for another test runner (pytest-django's database setup)."""
    old = _state_global["testing"]
    _state_global["testing"] = True
    try:
        yield
    finally:
        _state_global["testing"] = old


# ---------------------------------------------------------------------------------------------------------
# plans and usage


def _test_subscription(customer):
    return "sub_tollgate_test_%s" % customer


def set_plan(customer, plan, *, using=None):
    """Puts customer on plan, as an active Stripe subscription to one of its prices would (owner rights).

    The default plan removes that subscription again. A plan without Stripe
    prices or products cannot be given by a subscription: ValueError.
    """
    customer = str(customer)
    alias = using or _db.database_alias()
    _db.set_customer(customer, using=alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT is_default, stripe_prices, stripe_products FROM tollgate.plans WHERE plan = %s",
                       [plan])
        row = cursor.fetchone()
        if row is None:
            raise ValueError("no plan %r: tollgate apply writes the plans of tollgate.yaml" % plan)
        is_default, prices, products = row
        cursor.execute("DELETE FROM tollgate.subscriptions WHERE stripe_subscription = %s",
                       [_test_subscription(customer)])
        if is_default:
            return
        if not prices and not products:
            raise ValueError("plan %r has no Stripe price or product: no subscription can give it" % plan)
        cursor.execute(
            "INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, customer, status, price_ids, "
            "product_ids) VALUES (%s, %s, %s, 'active', %s, %s)",
            [_test_subscription(customer), "cus_tollgate_test_%s" % customer, customer, list(prices)[:1],
             [] if prices else list(products)[:1]])


def plan_of(customer, *, using=None):
    """The plan customer is on now."""
    alias = using or _db.database_alias()
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT coalesce((SELECT c.plan FROM tollgate.customers c WHERE c.customer = %s), "
                       "(SELECT p.plan FROM tollgate.plans p WHERE p.is_default))", [str(customer)])
        return cursor.fetchone()[0]


@contextlib.contextmanager
def plan(customer, name, *, using=None):
    """``with plan(customer, "pro"):`` the customer is on pro inside the block, on their old plan after it."""
    old = plan_of(customer, using=using)
    set_plan(customer, name, using=using)
    try:
        yield
    finally:
        set_plan(customer, old, using=using)


def usage_of(customer, feature, *, using=None):
    """How much of feature customer used in the current window."""
    return _db.check(customer, feature, using=using).used


def set_usage(customer, feature, used, *, using=None):
    """Makes customer's usage of feature in the current window exactly used (consume or refund the difference).

    Usage over the quota cannot be reached this way: ValueError.
    """
    if used < 0:
        raise ValueError("usage is never negative")
    now = usage_of(customer, feature, using=using)
    if used > now:
        verdict = _db.consume(customer, feature, used - now, using=using)
        if not verdict.allowed:
            raise ValueError("%s cannot use %d of %s: the quota is %s" % (customer, used, feature, verdict.quota))
    elif used < now:
        _db.refund(customer, feature, now - used, using=using)


# ---------------------------------------------------------------------------------------------------------
# assertions


class _Blocked:
    """assertBlocked as a context manager: expects QuotaExceeded, in a savepoint of its own."""

    def __init__(self, case, feature, using):
        self.case, self.feature, self.using = case, feature, using
        self.exception = None

    def __enter__(self):
        self._atomic = transaction.atomic(using=self.using or _db.database_alias())
        self._atomic.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._atomic.__exit__(exc_type, exc, tb)  # rolls the savepoint back on the error: the test goes on
        if exc_type is None:
            self.case.fail("QuotaExceeded not raised%s" % (" for %s" % self.feature if self.feature else ""))
        if not issubclass(exc_type, QuotaExceeded):
            return False
        if self.feature is not None:
            self.case.assertEqual(exc.feature, self.feature, "blocked on another feature")
        self.exception = exc
        return True


class TollgateAssertions:
    """Assertions for unittest/Django test cases: mix into your TestCase or TransactionTestCase."""

    def assertBlocked(self, response=None, feature=None, *, using=None):
        """That response is tollgate's 402 (of feature, when given); returns its JSON body.

        Without a response it is a context manager that expects QuotaExceeded
        (a row gate, ``require``) and runs the block in a savepoint, so the
        TestCase's transaction stays usable::

            with self.assertBlocked(feature="projects"):
                Project.objects.create(owner=user)
        """
        if response is None:
            return _Blocked(self, feature, using)
        self.assertEqual(response.status_code, 402, "not blocked: HTTP %s" % response.status_code)
        body = response.json() if response.get("Content-Type", "").startswith("application/json") else None
        if body is not None:
            self.assertEqual(body.get("error"), "quota_exceeded")
            if feature is not None:
                self.assertEqual(body.get("feature"), feature)
        return body

    def assertAllowed(self, response, remaining=None):
        """That response is not a tollgate block (nor a 401 of TOLLGATE_ANONYMOUS); checks X-Tollgate-Remaining."""
        self.assertNotIn(response.status_code, (401, 402), "blocked: HTTP %s" % response.status_code)
        if remaining is not None:
            self.assertEqual(response.get("X-Tollgate-Remaining"), str(remaining))

    def assertUsage(self, customer, feature, used, *, using=None):
        """That customer used exactly used of feature in the current window."""
        self.assertEqual(usage_of(customer, feature, using=using), used,
                         "usage of %s by %s" % (feature, customer))
