"""tollgate_django against a real tollgate database (see django_test.go for its configuration).

Plans: free (default) and pro (Stripe price price_pro_monthly; the Stripe
customers cus_pro, cus_pro2 and cus_pro3 have active subscriptions to it, and
as a Stripe customer links to one tollgate customer, each test takes its own).
Features, free quota / pro: api_calls 100 per 30 days / unlimited; exports 3
per 30 days / unlimited; projects 3 for life / unlimited, a row gate on
demo_project.
Routes: POST /api/features/* consumes 1 export, * /api/reports consumes 2.

The tests commit for real (TransactionTestCase) and assert on status codes,
SQLSTATEs and numbers, never on message text.
"""

import base64
import contextlib
import datetime
import hashlib
import hmac
import os
import unittest
import uuid
from unittest import mock

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, connections
from django.core import checks
from django.http import HttpResponse
from django.test import Client, TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext

import tollgate_django as tg
from tollgate_django.errors import sqlstate
from tollgate_django.middleware import clear_routes_cache

from .models import GatedProject, Project

QUOTA_EXCEEDED_KEYS = {"error", "feature", "message", "upgrade_url", "used", "quota", "resets_at"}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@contextlib.contextmanager
def atomic_requests(on):
    """Turns ATOMIC_REQUESTS on or off for the requests inside (Django reads it per request)."""
    settings_dict = connections["default"].settings_dict
    old = settings_dict["ATOMIC_REQUESTS"]
    settings_dict["ATOMIC_REQUESTS"] = on
    try:
        yield
    finally:
        settings_dict["ATOMIC_REQUESTS"] = old


def owner_query(sql, params):
    """Rows of sql run as tollgate's owner (TOLLGATE_DJANGO_OWNER_URL): the app role may not read its tables."""
    url = os.environ.get("TOLLGATE_DJANGO_OWNER_URL")
    if not url:
        raise unittest.SkipTest("TOLLGATE_DJANGO_OWNER_URL is not set (django_test.go sets it)")
    try:
        import psycopg2 as driver
    except ImportError:
        import psycopg as driver
    conn = driver.connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        conn.rollback()
        conn.close()


LINK_PREFIX = "https://billing.acme.test/upgrade/"


def verify_link(url):
    """The payload of a signed upgrade link, checked with the test database's key as the sidecar checks it:
    {customer, feature, event, email, variant, expires}. Fails the test for anything else."""
    assert url.startswith(LINK_PREFIX), url
    enc, mac = url[len(LINK_PREFIX):].split(".")
    unb64 = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    payload = unb64(enc)
    key = bytes.fromhex(os.environ["TOLLGATE_DJANGO_LINK_KEY"])
    assert hmac.compare_digest(unb64(mac), hmac.new(key, payload, hashlib.sha256).digest()), "bad signature"
    version, expires, event, email, variant, feature, customer = payload.decode("utf-8").split("|", 6)
    assert version == "1"
    return {"customer": customer, "feature": feature, "event": event, "email": email, "variant": variant,
            "expires": int(expires)}


def parse_iso(value):
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


class TollgateTestCase(TransactionTestCase):
    def setUp(self):
        self.user = self.make_user()
        self.customer = str(self.user.pk)
        self.client.force_login(self.user)

    def make_user(self):
        return get_user_model().objects.create(username="u-" + uuid.uuid4().hex[:16])

    def used(self, feature, customer=None):
        return tg.check(customer or self.customer, feature).used

    def assert_remaining(self, response, remaining):
        self.assertEqual(response.status_code, 200)
        self.assertEqual(int(response["X-Tollgate-Remaining"]), remaining)
        self.assertGreater(parse_iso(response["X-Tollgate-Reset"]), datetime.datetime.now(datetime.timezone.utc))

    def assert_quota_exceeded(self, response, feature, used, quota):
        self.assertEqual(response.status_code, 402)
        self.assertEqual(response["Content-Type"], "application/json")
        body = response.json()
        self.assertEqual(set(body), QUOTA_EXCEEDED_KEYS)
        self.assertEqual(body["error"], "quota_exceeded")
        self.assertEqual(body["feature"], feature)
        self.assertEqual(body["used"], used)
        self.assertEqual(body["quota"], quota)
        # the customer's signed upgrade link for the feature (the sidecar has links on)
        self.assertEqual(verify_link(body["upgrade_url"])["feature"], feature)
        self.assertIsInstance(body["message"], str)
        self.assertTrue(body["message"])
        self.assertEqual(response["X-Tollgate-Remaining"], "0")
        return body


class GateDecoratorTests(TollgateTestCase):
    def test_free_customer_gets_100_calls_then_402(self):
        for i in range(1, 101):
            response = self.client.get("/api/call")
            self.assert_remaining(response, 100 - i)
        body = self.assert_quota_exceeded(self.client.get("/api/call"), "api_calls", used=100, quota=100)
        self.assertGreater(parse_iso(body["resets_at"]), datetime.datetime.now(datetime.timezone.utc))
        self.assertEqual(body["resets_at"], self.client.get("/api/call")["X-Tollgate-Reset"])
        self.assertEqual(self.used("api_calls"), 100)  # blocked calls count nothing

    def test_amount_counts_units(self):
        for i in range(1, 21):
            self.assert_remaining(self.client.get("/api/bulk"), 100 - 5 * i)
        self.assert_quota_exceeded(self.client.get("/api/bulk"), "api_calls", used=100, quota=100)

    def test_a_call_that_would_cross_the_quota_is_blocked_whole(self):
        tg.consume(self.customer, "api_calls", 97)
        self.assert_quota_exceeded(self.client.get("/api/bulk"), "api_calls", used=97, quota=100)
        self.assert_remaining(self.client.get("/api/call"), 2)

    def test_browsers_get_a_page(self):
        tg.consume(self.customer, "api_calls", 100)
        response = self.client.get("/api/call", HTTP_ACCEPT=BROWSER_ACCEPT)
        self.assertEqual(response.status_code, 402)
        self.assertTrue(response["Content-Type"].startswith("text/html"))
        self.assertContains(response, 'href="%s' % LINK_PREFIX, status_code=402)
        # API clients, and clients that take anything, get JSON
        self.assert_quota_exceeded(self.client.get("/api/call", HTTP_ACCEPT="*/*"), "api_calls", 100, 100)
        self.assert_quota_exceeded(self.client.get("/api/call", HTTP_ACCEPT="application/json, text/html"),
                                   "api_calls", 100, 100)

    def test_pro_customer_never_blocks(self):
        tg.set_customer(self.customer, "pro@example.test", "cus_pro")
        self.assertEqual(tg.check(self.customer, "api_calls").plan, "pro")
        for _ in range(150):
            response = self.client.get("/api/call")
            self.assertEqual(response.status_code, 200)
            self.assertNotIn("X-Tollgate-Remaining", response)
        verdict = tg.check(self.customer, "api_calls")
        self.assertEqual((verdict.used, verdict.quota, verdict.remaining), (150, None, None))

    def test_customer_callable(self):
        anonymous = Client()
        team = "team-" + uuid.uuid4().hex
        self.assert_remaining(anonymous.get("/api/team", HTTP_X_TEAM=team), 99)
        self.assertEqual(self.used("api_calls", team), 1)


class MiddlewareTests(TollgateTestCase):
    def test_a_route_is_gated_by_the_middleware_alone(self):
        for remaining in (2, 1, 0):
            self.assert_remaining(self.client.post("/api/features/export"), remaining)
        self.assert_quota_exceeded(self.client.post("/api/features/export"), "exports", used=3, quota=3)
        # another method, another path: not gated
        for response in (self.client.get("/api/features/export"), self.client.get("/api/call")):
            self.assertEqual(response.status_code, 200)
        self.assertEqual(self.used("exports"), 3)

    def test_any_method_route_with_an_amount(self):
        self.assert_remaining(self.client.get("/api/reports"), 1)
        self.assert_quota_exceeded(self.client.delete("/api/reports"), "exports", used=2, quota=3)
        self.assert_remaining(self.client.post("/api/features/pdf"), 0)

    def test_routes_are_read_once_per_cache_period(self):
        clear_routes_cache()
        with CaptureQueriesContext(connection) as queries:
            for _ in range(3):
                self.assertEqual(self.client.get("/api/features/export").status_code, 200)
        self.assertEqual(sum("tollgate.routes()" in q["sql"] for q in queries.captured_queries), 1)

    def test_quota_exceeded_from_a_view_is_a_402(self):
        for _ in range(3):
            self.assertEqual(self.client.post("/projects").status_code, 201)
        self.assert_quota_exceeded(self.client.post("/projects"), "projects", used=3, quota=3)
        self.assertEqual(Project.objects.filter(owner=self.user).count(), 3)


class AtomicRequestsTests(TollgateTestCase):
    """ATOMIC_REQUESTS decides whether a view that raises keeps what its gates consumed."""

    def setUp(self):
        super().setUp()
        self.raising_client = Client(raise_request_exception=False)
        self.raising_client.force_login(self.user)

    def explode(self):
        self.assertEqual(self.raising_client.get("/api/explode").status_code, 500)  # @gate
        self.assertEqual(self.raising_client.post("/api/features/explode").status_code, 500)  # route

    def test_with_atomic_requests_a_raising_view_gives_the_usage_back(self):
        with atomic_requests(True):
            self.explode()
            self.assertEqual((self.used("api_calls"), self.used("exports")), (0, 0))
            # and a view that returns keeps it
            self.assert_remaining(self.client.get("/api/call"), 99)
            self.assert_remaining(self.client.post("/api/features/export"), 2)
        self.assertEqual((self.used("api_calls"), self.used("exports")), (1, 1))

    def test_without_atomic_requests_a_raising_view_keeps_the_usage(self):
        with atomic_requests(False):
            self.explode()
        self.assertEqual((self.used("api_calls"), self.used("exports")), (1, 1))


class BlockedCallEventTests(TollgateTestCase):
    """A TG402 raised in the database (require, a row gate) rolls back the limit_reached event the
    blocked call wrote, with its transaction: the helper records it again (tollgate.note_blocked) once
    the transaction is over, so the customer still gets the upgrade email."""

    def limit_reached(self, feature):
        return owner_query(
            "SELECT used, quota FROM tollgate.events WHERE customer = %s AND feature = %s AND kind = 'limit_reached'",
            [self.customer, feature])

    def test_row_gate_in_an_atomic_request(self):
        with atomic_requests(True):
            for _ in range(3):
                self.assertEqual(self.client.post("/projects").status_code, 201)
            self.assertEqual(self.limit_reached("projects"), [])
            for _ in range(2):  # blocked again: still one event
                self.assert_quota_exceeded(self.client.post("/projects"), "projects", used=3, quota=3)
        self.assertEqual(self.limit_reached("projects"), [(3, 3)])
        self.assertEqual(self.used("projects"), 3)  # noting counts nothing
        self.assertEqual(Project.objects.filter(owner=self.user).count(), 3)

    def test_row_gate_in_autocommit(self):
        for i in range(3):
            Project.objects.create(owner=self.user, name="p%d" % i)
        with self.assertRaises(tg.QuotaExceeded):
            Project.objects.create(owner=self.user, name="p3")
        self.assertEqual(self.limit_reached("projects"), [(3, 3)])

    def test_a_view_that_catches_quota_exceeded_in_its_own_transaction(self):
        for _ in range(3):
            self.assertEqual(self.client.post("/projects/try").status_code, 201)
        response = self.client.post("/projects/try")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.json()["upgrade"])
        self.assertEqual(self.limit_reached("projects"), [(3, 3)])

    def test_require_with_an_amount(self):
        tg.consume(self.customer, "api_calls", 97)
        with self.assertRaises(tg.QuotaExceeded):
            tg.require(self.customer, "api_calls", 5)  # 97 + 5 > 100; 97 + 1 would be allowed
        self.assertEqual(self.limit_reached("api_calls"), [(97, 100)])
        self.assertEqual(self.used("api_calls"), 97)

    def test_an_error_while_noting_is_logged_not_raised(self):
        for _ in range(3):
            self.assertEqual(self.client.post("/projects").status_code, 201)
        with atomic_requests(True), self.assertLogs("tollgate_django", "ERROR"), \
                mock.patch("tollgate_django.db.note_blocked", side_effect=DatabaseError("down")):
            self.assert_quota_exceeded(self.client.post("/projects"), "projects", used=3, quota=3)
        self.assertEqual(self.limit_reached("projects"), [])


class RowGateTests(TollgateTestCase):
    def test_the_fourth_project_on_free_raises_quota_exceeded(self):
        for i in range(3):
            Project.objects.create(owner=self.user, name="p%d" % i)
        with self.assertRaises(tg.QuotaExceeded) as caught:
            Project.objects.create(owner=self.user, name="p3")
        err = caught.exception
        self.assertIsInstance(err, DatabaseError)
        self.assertEqual(sqlstate(err), "TG402")
        self.assertEqual((err.feature, err.customer, err.plan, err.used, err.quota),
                         ("projects", self.customer, "free", 3, 3))
        self.assertIsNone(err.resets_at)  # lifetime
        self.assertTrue(err.upgrade_message)
        self.assertEqual(Project.objects.filter(owner=self.user).count(), 3)
        # deleting a project makes room for one
        Project.objects.filter(owner=self.user).first().delete()
        Project.objects.create(owner=self.user, name="p3")
        self.assertEqual(self.used("projects"), 3)

    def test_pro_has_no_project_limit(self):
        tg.set_customer(self.customer, None, "cus_pro2")
        for i in range(6):
            Project.objects.create(owner=self.user, name="p%d" % i)
        self.assertEqual(self.used("projects"), 6)


class ApiTests(TollgateTestCase):
    def test_consume_check_refund_usage(self):
        verdict = tg.consume(self.customer, "api_calls", 3)
        self.assertIsInstance(verdict, tg.Verdict)
        self.assertEqual((verdict.allowed, verdict.customer, verdict.feature, verdict.plan),
                         (True, self.customer, "api_calls", "free"))
        self.assertEqual((verdict.used, verdict.quota, verdict.remaining, verdict.unlimited), (3, 100, 97, False))
        self.assertIsNotNone(verdict.resets_at.tzinfo)
        self.assertEqual(tg.check(self.customer, "api_calls").used, 3)
        self.assertEqual(tg.check(self.customer, "api_calls", 98).allowed, False)
        self.assertEqual(tg.refund(self.customer, "api_calls", 2).used, 1)
        rows = tg.usage(self.customer)
        self.assertEqual([v.feature for v in rows], ["api_calls", "exports", "projects"])
        self.assertEqual([v.used for v in rows], [1, 0, 0])

    def test_consume_joins_the_current_transaction(self):
        from django.db import transaction

        with self.assertRaises(RuntimeError):
            with transaction.atomic():
                tg.consume(self.customer, "api_calls", 10)
                raise RuntimeError("roll back")
        self.assertEqual(self.used("api_calls"), 0)

    def test_require_raises_quota_exceeded(self):
        self.assertEqual(tg.require(self.customer, "api_calls", 100).remaining, 0)
        with self.assertRaises(tg.QuotaExceeded) as caught:
            tg.require(self.customer, "api_calls")
        err = caught.exception
        self.assertEqual((err.feature, err.used, err.quota), ("api_calls", 100, 100))
        self.assertIsNotNone(err.resets_at.tzinfo)

    def test_errors_map_to_their_sqlstates(self):
        cases = [
            (lambda: tg.consume(self.customer, "no_such_feature"), tg.UnknownFeature, "TG404"),
            (lambda: tg.consume(self.customer, "api_calls", 0), tg.InvalidArgument, "TG422"),
            (lambda: tg.consume("", "api_calls"), tg.InvalidArgument, "TG422"),
            (lambda: tg.set_customer(self.customer, "not-an-email"), tg.InvalidArgument, "TG422"),
        ]
        for call, cls, code in cases:
            with self.subTest(code=code, cls=cls.__name__):
                with self.assertRaises(cls) as caught:
                    call()
                self.assertEqual(sqlstate(caught.exception), code)

    def test_other_database_errors_pass_through(self):
        with self.assertRaises(DatabaseError) as caught:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1/0")
        self.assertNotIsInstance(caught.exception, tg.TollgateError)
        self.assertEqual(sqlstate(caught.exception), "22012")

    def test_psycopg3_errors_translate(self):
        try:
            import psycopg
        except ImportError:
            raise unittest.SkipTest("psycopg 3 is not installed (Debian: python3-psycopg)")
        db = connection.settings_dict
        params = dict(db["OPTIONS"], dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"],
                      host=db["HOST"], port=db["PORT"])
        with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as conn:
            with self.assertRaises(psycopg.Error) as caught:
                conn.execute("SELECT tollgate.require(%s, 'projects', 4)", [self.customer])
            self.assertEqual(caught.exception.sqlstate, "TG402")
            err = tg.translate(caught.exception)
            self.assertIsInstance(err, tg.QuotaExceeded)
            self.assertEqual((err.feature, err.customer, err.used, err.quota), ("projects", self.customer, 0, 3))
            # as Django 4.2+ wraps it
            wrapped = DatabaseError(*caught.exception.args)
            wrapped.__cause__ = caught.exception
            self.assertIsInstance(tg.translate(wrapped), tg.QuotaExceeded)
            with self.assertRaises(psycopg.Error) as caught:
                conn.execute("SELECT tollgate.consume(%s, 'no_such_feature')", [self.customer])
            self.assertIsInstance(tg.translate(caught.exception), tg.UnknownFeature)


class TemplateTagTests(TollgateTestCase):
    def test_usage_text(self):
        tg.consume(self.customer, "api_calls", 80)
        tg.consume(self.customer, "exports", 1)
        response = self.client.get("/usage")
        self.assertContains(response, '<p id="api">80 of 100 API calls used</p>', html=False)
        self.assertContains(response, "<li>1 of 3 exports used</li>")
        self.assertContains(response, "<li>0 of 3 projects used</li>")

    def test_unlimited_and_anonymous(self):
        tg.set_customer(self.customer, None, "cus_pro3")
        tg.consume(self.customer, "api_calls", 12)
        self.assertContains(self.client.get("/usage"), '<p id="api">12 API calls used</p>')
        self.assertContains(Client().get("/usage"), '<p id="api"></p>')


@unittest.skipUnless(settings.HAVE_DRF, "Django REST framework is not installed (Debian: python3-djangorestframework)")
class RestFrameworkTests(TollgateTestCase):
    def test_permission_gates_an_api_view(self):
        for remaining in (2, 1, 0):
            self.assert_remaining(self.client.get("/drf/ping"), remaining)
        self.assert_quota_exceeded(self.client.get("/drf/ping"), "exports", used=3, quota=3)

    def test_permission_consumes_once_per_request(self):
        from rest_framework.test import APIRequestFactory
        from rest_framework.views import APIView

        from tollgate_django.permissions import gate_permission

        permission = gate_permission("exports")()
        view = APIView()
        request = APIView().initialize_request(APIRequestFactory().get("/drf/ping"))
        request.user = self.user
        for _ in range(3):  # as BrowsableAPIRenderer.show_form_for_method asks again, per form
            self.assertTrue(permission.has_permission(request, view))
        self.assertEqual(self.used("exports"), 1)
        # another request consumes again
        request = APIView().initialize_request(APIRequestFactory().get("/drf/ping"))
        request.user = self.user
        self.assertTrue(permission.has_permission(request, view))
        self.assertEqual(self.used("exports"), 2)

    def test_the_browsable_api_consumes_once_per_page(self):
        response = self.client.get("/drf/browsable", HTTP_ACCEPT=BROWSER_ACCEPT)
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/html"))
        self.assertEqual(response["X-Tollgate-Remaining"], "2")
        self.assertEqual(self.used("exports"), 1)
        self.client.get("/drf/browsable", HTTP_ACCEPT=BROWSER_ACCEPT)
        self.assertEqual(self.used("exports"), 2)


def anonymous_key(request, feature):
    """A TOLLGATE_ANONYMOUS callable: anonymous callers of /api/call are metered by a header, others refused."""
    if request.headers.get("X-Anonymous-Key"):
        return "anon-" + request.headers["X-Anonymous-Key"]
    if request.path == "/api/reports":
        return None  # let through, unmetered
    return HttpResponse("who are you?", status=418)


class AnonymousPolicyTests(TollgateTestCase):
    """TOLLGATE_ANONYMOUS: a request without a customer never passes a gate silently."""

    def test_block_is_the_default(self):
        self.assertFalse(hasattr(settings, "TOLLGATE_ANONYMOUS"))
        anonymous = Client()
        for method, path in (("get", "/api/call"), ("post", "/api/features/export"), ("get", "/api/team")):
            response = getattr(anonymous, method)(path)
            self.assertEqual(response.status_code, 401, path)
            self.assertEqual(response.json()["error"], "customer_required")
        # a browser is sent to the login page
        response = anonymous.get("/api/call", HTTP_ACCEPT=BROWSER_ACCEPT)
        self.assertEqual(response.status_code, 302)
        self.assertIn(settings.LOGIN_URL, response["Location"])

    def test_allow_lets_them_through_unmetered(self):
        with override_settings(TOLLGATE_ANONYMOUS="allow"):
            for method, path in (("get", "/api/call"), ("post", "/api/features/export")):
                response = getattr(Client(), method)(path)
                self.assertEqual(response.status_code, 200)
                self.assertNotIn("X-Tollgate-Remaining", response)

    def test_a_callable_meters_refuses_or_allows(self):
        key = uuid.uuid4().hex
        with override_settings(TOLLGATE_ANONYMOUS="demo.tests.anonymous_key"):
            self.assert_remaining(Client().get("/api/call", HTTP_X_ANONYMOUS_KEY=key), 99)
            self.assertEqual(Client().get("/api/call").status_code, 418)
            response = Client().get("/api/reports")
            self.assertEqual(response.status_code, 200)
            self.assertNotIn("X-Tollgate-Remaining", response)
        self.assertEqual(self.used("api_calls", "anon-" + key), 1)


class OncePerRequestTests(TollgateTestCase):
    def test_a_route_and_gate_on_the_same_view_count_once(self):
        # POST /api/features/gated matches the route POST /api/features/* (exports) and has @gate("exports")
        for remaining in (2, 1, 0):
            self.assert_remaining(self.client.post("/api/features/gated"), remaining)
        self.assert_quota_exceeded(self.client.post("/api/features/gated"), "exports", used=3, quota=3)
        self.assertEqual(self.used("exports"), 3)

    def test_once_under_atomic_requests_too(self):
        with atomic_requests(True):
            self.assert_remaining(self.client.post("/api/features/gated"), 2)
        self.assertEqual(self.used("exports"), 1)


@unittest.skipUnless(settings.HAVE_DRF, "Django REST framework is not installed (Debian: python3-djangorestframework)")
class RestFrameworkRouteTests(TollgateTestCase):
    """Token, basic or session: a route on a DRF view meters the user DRF authenticates."""

    def setUp(self):
        super().setUp()
        from rest_framework.authtoken.models import Token

        self.token = Token.objects.create(user=self.user)
        self.api = Client()  # no session: only the token says who it is

    def get(self, path, **extra):
        return self.api.get(path, HTTP_AUTHORIZATION="Token " + self.token.key, **extra)

    def test_token_authenticated_requests_are_metered(self):
        for remaining in (2, 1, 0):
            response = self.get("/drf/routed")
            self.assert_remaining(response, remaining)
            self.assertEqual(response.json()["user"], self.user.pk)
        for _ in range(3):  # a free user at 3/3 gets nothing more for free
            self.assert_quota_exceeded(self.get("/drf/routed"), "exports", used=3, quota=3)
        self.assertEqual(self.used("exports"), 3)

    def test_basic_authentication_is_metered_too(self):
        import base64

        self.user.set_password("pw")
        self.user.save()
        credentials = base64.b64encode(("%s:pw" % self.user.username).encode()).decode()
        response = self.api.get("/drf/routed", HTTP_AUTHORIZATION="Basic " + credentials)
        self.assert_remaining(response, 2)
        self.assertEqual(self.used("exports"), 1)

    def test_unauthenticated_requests_get_drfs_401(self):
        response = self.api.get("/drf/routed")
        self.assertEqual(response.status_code, 401)
        self.assertEqual(self.used("exports"), 0)
        # a bad token never reaches the gate
        response = self.api.get("/drf/routed", HTTP_AUTHORIZATION="Token nope")
        self.assertEqual(response.status_code, 401)
        with override_settings(TOLLGATE_ANONYMOUS="allow"):
            self.assertEqual(self.api.get("/drf/routed").status_code, 200)

    def test_a_route_and_a_permission_count_once(self):
        for remaining in (2, 1, 0):
            self.assert_remaining(self.get("/drf/routed-and-permission"), remaining)
        self.assert_quota_exceeded(self.get("/drf/routed-and-permission"), "exports", used=3, quota=3)
        self.assertEqual(self.used("exports"), 3)

    def test_under_atomic_requests_the_route_counts_in_the_views_transaction(self):
        with atomic_requests(True):
            self.assert_remaining(self.get("/drf/routed"), 2)
        self.assertEqual(self.used("exports"), 1)

    def test_token_auth_with_allow_on_routes_is_a_warning(self):
        from tollgate_django.checks import check_routes_with_token_authentication

        with override_settings(TOLLGATE_ANONYMOUS="allow"):
            found = check_routes_with_token_authentication(databases=["default"])
            self.assertEqual([m.id for m in found], ["tollgate.W001"])
            self.assertEqual(check_routes_with_token_authentication(databases=None), [])  # needs --database
        self.assertEqual(check_routes_with_token_authentication(databases=["default"]), [])  # "block"

    def test_and_a_warning_in_the_log_when_routes_are_first_read(self):
        from tollgate_django import middleware

        middleware._warned.clear()
        clear_routes_cache()
        with override_settings(TOLLGATE_ANONYMOUS="allow"), self.assertLogs("tollgate_django", "WARNING") as logs:
            self.assertEqual(self.get("/drf/routed").status_code, 200)
        self.assertIn("tollgate.W001", logs.output[0])


class TestCaseTests(TestCase):
    """Inside a TestCase's transaction, a row gate's 402 leaves the test's transaction usable."""

    def test_a_row_gate_402_in_a_testcase(self):
        user = get_user_model().objects.create(username="t-" + uuid.uuid4().hex[:16])
        self.client.force_login(user)
        for _ in range(3):
            self.assertEqual(self.client.post("/projects").status_code, 201)
        response = self.client.post("/projects")
        self.assertEqual(response.status_code, 402)
        self.assertEqual(response.json()["feature"], "projects")
        # the test's transaction goes on
        self.assertEqual(Project.objects.filter(owner=user).count(), 3)
        self.assertEqual(tg.check(str(user.pk), "projects").used, 3)


class FormTests(TollgateTestCase):
    """A row gate's block in a ModelForm or the admin is a form error, not a 402 page."""

    def fill(self, owner=None):
        for i in range(3):
            Project.objects.create(owner=owner or self.user, name="p%d" % i)

    def test_a_modelform_of_a_rowgatemixin_model(self):
        from django import forms

        class ProjectForm(forms.ModelForm):
            class Meta:
                model = GatedProject
                fields = ["owner", "name"]

        form = ProjectForm({"owner": self.user.pk, "name": "fourth"})
        self.assertTrue(form.is_valid(), form.errors)
        self.fill()
        form = ProjectForm({"owner": self.user.pk, "name": "fourth"})
        self.assertFalse(form.is_valid())
        self.assertEqual([e.code for e in form.non_field_errors().as_data()], ["quota_exceeded"])
        self.assertEqual(self.used("projects"), 3)  # checking counts nothing
        # moving an existing project to its own owner is no new row: valid
        project = GatedProject.objects.filter(owner=self.user).first()
        self.assertTrue(ProjectForm({"owner": self.user.pk, "name": "renamed"}, instance=project).is_valid())

    def staff(self):
        staff = get_user_model().objects.create(username="s-" + uuid.uuid4().hex[:16], is_staff=True,
                                                is_superuser=True)
        client = Client()
        client.force_login(staff)
        return staff, client

    def test_the_admin_shows_the_block_as_a_form_error(self):
        self.fill()
        staff, client = self.staff()
        response = client.post("/admin/demo/project/add/", {"owner": self.user.pk, "name": "keep-this-name"},
                               HTTP_ACCEPT=BROWSER_ACCEPT)
        self.assertEqual(response.status_code, 200)
        form = response.context["adminform"].form
        self.assertEqual([e.code for e in form.non_field_errors().as_data()], ["quota_exceeded"])
        self.assertContains(response, 'value="keep-this-name"')
        self.assertEqual(Project.objects.filter(owner=self.user).count(), 3)

    def test_a_blocked_save_in_the_admin_is_a_form_error_too(self):
        staff, client = self.staff()
        self.fill(owner=staff)
        response = client.post("/admin/demo/ownproject/add/", {"name": "keep-this-name"}, HTTP_ACCEPT=BROWSER_ACCEPT)
        self.assertEqual(response.status_code, 200)
        form = response.context["adminform"].form
        self.assertEqual([e.code for e in form.non_field_errors().as_data()], ["quota_exceeded"])
        self.assertContains(response, 'value="keep-this-name"')
        self.assertEqual(Project.objects.filter(owner=staff).count(), 3)
        # and under the limit it saves
        Project.objects.filter(owner=staff).first().delete()
        response = client.post("/admin/demo/ownproject/add/", {"name": "fits"})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(Project.objects.filter(owner=staff).count(), 3)


class ChecksTests(TollgateTestCase):
    def ids(self, **overrides):
        with override_settings(**overrides):
            return sorted({m.id for m in checks.run_checks() if m.id.startswith("tollgate.")})

    def test_a_good_configuration_passes(self):
        self.assertEqual(self.ids(), [])

    def test_each_misconfiguration(self):
        middleware = list(settings.MIDDLEWARE)
        middleware.remove("tollgate_django.TollgateMiddleware")
        middleware.insert(0, "tollgate_django.TollgateMiddleware")
        cases = [
            ({"TOLLGATE_DATABASE": "sqlite"}, ["tollgate.E001"]),
            ({"TOLLGATE_DATABASE": "nowhere"}, ["tollgate.E001"]),
            ({"MIDDLEWARE": middleware}, ["tollgate.E002"]),
            ({"TOLLGATE_CUSTOMER": "demo.no_such_module.customer"}, ["tollgate.E003"]),
            ({"TOLLGATE_CUSTOMER": "demo.models.settings"}, ["tollgate.E003"]),  # not callable
            ({"TOLLGATE_ANONYMOUS": "demo.tests.no_such_function"}, ["tollgate.E003"]),
            ({"TOLLGATE_ANONYMOUS": "maybe"}, ["tollgate.E004"]),
        ]
        for overrides, want in cases:
            with self.subTest(**{k: str(v)[:40] for k, v in overrides.items()}):
                self.assertEqual(self.ids(**overrides), want)


class UpgradePageTests(TollgateTestCase):
    def test_the_page_names_the_feature_and_a_human_date(self):
        import html
        import re

        tg.consume(self.customer, "api_calls", 100)
        resets_at = tg.check(self.customer, "api_calls").resets_at
        response = self.client.get("/api/call", HTTP_ACCEPT=BROWSER_ACCEPT)
        self.assertEqual(response.status_code, 402)
        text = html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))
        self.assertIn("100 of 100 API calls used", " ".join(text.split()))
        self.assertIn("%d %s %d" % (resets_at.day, resets_at.strftime("%B"), resets_at.year), text)
        self.assertIsNone(re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text), "a raw ISO timestamp on the page")
        with override_settings(TOLLGATE_FEATURE_LABELS={"api_calls": "searches"}):
            response = self.client.get("/api/call", HTTP_ACCEPT=BROWSER_ACCEPT)
        self.assertContains(response, "100 of 100 searches used", status_code=402)


class AsyncCommitTests(TollgateTestCase):
    def gate_sql(self, queries):
        return [q["sql"] for q in queries.captured_queries if "tollgate.consume" in q["sql"]]

    def test_off_by_default(self):
        with CaptureQueriesContext(connection) as queries:
            self.assert_remaining(self.client.get("/api/call"), 99)
        self.assertNotIn("synchronous_commit", self.gate_sql(queries)[0])

    def test_on_only_for_the_gates_own_transaction(self):
        from django.db import transaction

        with override_settings(TOLLGATE_ASYNC_COMMIT=True):
            with CaptureQueriesContext(connection) as queries:
                self.assert_remaining(self.client.get("/api/call"), 99)
            self.assertIn("synchronous_commit", self.gate_sql(queries)[0])
            # inside the app's transaction it never changes how that transaction commits
            with CaptureQueriesContext(connection) as queries, transaction.atomic():
                tg.consume(self.customer, "api_calls")
                with connection.cursor() as cursor:
                    cursor.execute("SHOW synchronous_commit")
                    self.assertEqual(cursor.fetchone()[0], "on")
            self.assertNotIn("synchronous_commit", self.gate_sql(queries)[0])
            with atomic_requests(True), CaptureQueriesContext(connection) as queries:
                self.assert_remaining(self.client.get("/api/call"), 97)
            self.assertNotIn("synchronous_commit", self.gate_sql(queries)[0])
        self.assertEqual(self.used("api_calls"), 3)
        with connection.cursor() as cursor:  # and the setting did not outlive the gate's transaction
            cursor.execute("SHOW synchronous_commit")
            self.assertEqual(cursor.fetchone()[0], "on")


class RowGateRecountTests(TollgateTestCase):
    """The row gate's migration is reversible: back to 0001 detaches it, forward attaches it and recounts the
    rows present, exactly, up or down."""

    def setUp(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regprocedure('tollgate.detach_row_gate(regclass, text)') IS NOT NULL")
            if not cursor.fetchone()[0]:
                self.skipTest("tollgate.detach_row_gate is not in this database's tollgate yet")
        super().setUp()

    def migrate(self, target):
        from django.core.management import call_command

        call_command("migrate", "demo", target, verbosity=0)

    def test_detach_delete_attach_recounts_down(self):
        other = self.make_user()
        for i in range(3):
            Project.objects.create(owner=self.user, name="p%d" % i)
        Project.objects.create(owner=other, name="o")
        self.assertEqual(self.used("projects"), 3)
        try:
            self.migrate("0001")
            Project.objects.filter(owner=self.user).delete()  # no gate: nothing given back
            self.assertEqual(self.used("projects"), 3)
        finally:
            self.migrate("0003")
        self.assertEqual(self.used("projects"), 0)  # recounted: no rows, nothing used
        self.assertEqual(self.used("projects", str(other.pk)), 1)
        for i in range(3):  # and the free customer has their 3 projects again
            Project.objects.create(owner=self.user, name="again%d" % i)
        with self.assertRaises(tg.QuotaExceeded):
            Project.objects.create(owner=self.user, name="fourth")

    def test_rows_added_while_detached_are_counted(self):
        Project.objects.create(owner=self.user, name="p0")
        try:
            self.migrate("0001")
            Project.objects.create(owner=self.user, name="p1")  # no gate: not counted
            self.assertEqual(self.used("projects"), 1)
        finally:
            self.migrate("0003")
        self.assertEqual(self.used("projects"), 2)
        Project.objects.create(owner=self.user, name="p2")
        with self.assertRaises(tg.QuotaExceeded):
            Project.objects.create(owner=self.user, name="p3")
