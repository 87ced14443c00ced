"""Entitlements beyond the plan (issue 18) through tollgate_django: idempotent gates, grants and overrides
through the admin alias, and the management commands.

The alias "admin" connects as a login role that is only a member of tollgate_admin (a support tool's
user); "default" as a member of tollgate_app only, which may not change entitlements. See demo/tests.py
for the configuration (api_calls: 100 per 30 days on free; exports: 3; routes POST /api/features/*).
"""

import datetime
import io
import os
import subprocess
import sys
import threading
import time
import unittest
import uuid

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

import tollgate_django as tg
from tollgate_django.errors import sqlstate
from tollgate_django.http import gate_key

from . import views
from .tests import TollgateTestCase, atomic_requests, parse_iso

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/django, where manage.py is
DEADLINE = 60  # seconds: a condition not reached by then fails the test


def wait_for(condition, what):
    """Polls condition() until it is true; fails after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.01)


class VerdictTests(unittest.TestCase):
    def test_granted_is_the_last_field_and_optional(self):
        old = tg.Verdict(True, "c", "f", "free", 1, 10, 9, None, None)  # the nine fields of before
        self.assertIsNone(old.granted)
        self.assertEqual(old.available, 9)
        new = tg.Verdict(True, "c", "f", "free", 12, 10, 0, None, None, 8)
        self.assertEqual((new.remaining, new.granted, new.available), (0, 8, 8))
        self.assertIsNone(tg.Verdict(True, "c", "f", "pro", 1, None, None, None, None, None).available)

    def test_gate_keys_are_scoped_to_the_feature(self):
        self.assertEqual(gate_key("api_calls", "k1"), "api_calls:k1")
        long = gate_key("api_calls", "x" * 255)
        self.assertLessEqual(len(long), 255)
        self.assertEqual(long, gate_key("api_calls", "x" * 255))  # a retry gets the same
        self.assertNotEqual(long, gate_key("api_calls", "x" * 254 + "y"))


class IdempotentConsumeTests(TollgateTestCase):
    def test_a_keyed_consume_counts_once_across_retries(self):
        first = tg.consume(self.customer, "api_calls", 3, idempotency_key="job-17")
        for _ in range(3):
            self.assertEqual(tg.consume(self.customer, "api_calls", 3, idempotency_key="job-17"), first)
        self.assertEqual((first.used, first.remaining, first.granted), (3, 97, 0))
        self.assertEqual(self.used("api_calls"), 3)
        # another key counts; no key counts every time
        self.assertEqual(tg.consume(self.customer, "api_calls", 3, idempotency_key="job-18").used, 6)
        tg.consume(self.customer, "api_calls", 3)
        tg.consume(self.customer, "api_calls", 3)
        self.assertEqual(self.used("api_calls"), 12)
        # the same key for another amount is refused, and counts nothing
        with self.assertRaises(tg.InvalidArgument) as caught:
            tg.consume(self.customer, "api_calls", 4, idempotency_key="job-17")
        self.assertEqual(sqlstate(caught.exception), "TG422")
        # keys are per customer
        other = self.make_user()
        self.assertEqual(tg.consume(str(other.pk), "api_calls", 3, idempotency_key="job-17").used, 3)
        self.assertEqual(self.used("api_calls"), 12)

    def test_a_rolled_back_keyed_consume_counts_on_retry(self):
        from django.db import transaction

        with self.assertRaises(RuntimeError):
            with transaction.atomic():
                tg.consume(self.customer, "api_calls", 5, idempotency_key="k")
                raise RuntimeError("roll back")
        self.assertEqual(self.used("api_calls"), 0)
        self.assertEqual(tg.consume(self.customer, "api_calls", 5, idempotency_key="k").used, 5)

    def test_keyed_require(self):
        self.assertEqual(tg.require(self.customer, "api_calls", 100, idempotency_key="all").remaining, 0)
        self.assertEqual(tg.require(self.customer, "api_calls", 100, idempotency_key="all").used, 100)
        with self.assertRaises(tg.QuotaExceeded):
            tg.require(self.customer, "api_calls", 1, idempotency_key="one-more")
        self.assertEqual(self.used("api_calls"), 100)


class IdempotentGateTests(TollgateTestCase):
    def test_a_callable_key_counts_a_retried_request_once(self):
        for _ in range(3):
            self.assert_remaining(self.client.get("/api/keyed?key=a&amount=5"), 95)
        self.assert_remaining(self.client.get("/api/keyed?key=b&amount=5"), 90)
        self.assert_remaining(self.client.get("/api/keyed?amount=5"), 85)  # None: no key
        self.assert_remaining(self.client.get("/api/keyed?amount=5"), 80)
        self.assertEqual(self.used("api_calls"), 20)

    def test_a_key_reused_for_another_amount_or_malformed_is_a_422(self):
        self.assert_remaining(self.client.get("/api/keyed?key=a&amount=5"), 95)
        response = self.client.get("/api/keyed?key=a&amount=6")
        self.assertEqual(response.status_code, 422)
        self.assertEqual(response.json()["error"], "idempotency_key_reused")
        self.assertEqual(response.json()["feature"], "api_calls")
        for bad in ("x" * 256, "a%0Ab"):
            response = self.client.get("/api/keyed?key=%s" % bad)
            self.assertEqual(response.status_code, 422, bad[:10])
            self.assertEqual(response.json()["error"], "invalid_idempotency_key")
        self.assertEqual(self.used("api_calls"), 5)
        # the longest key is fine
        self.assert_remaining(self.client.get("/api/keyed?key=%s" % ("y" * 255)), 94)

    def test_a_blocked_keyed_request_stays_blocked_on_retry(self):
        tg.consume(self.customer, "api_calls", 98)
        self.assert_quota_exceeded(self.client.get("/api/keyed?key=big&amount=5"), "api_calls", 98, 100)
        tg.refund(self.customer, "api_calls", 50)
        # the retry gets the first answer; a new key is decided again
        self.assert_quota_exceeded(self.client.get("/api/keyed?key=big&amount=5"), "api_calls", 98, 100)
        self.assert_remaining(self.client.get("/api/keyed?key=big2&amount=5"), 47)

    def test_the_header_is_opt_in(self):
        header = {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex}
        self.assert_remaining(self.client.get("/api/call", **header), 99)
        self.assert_remaining(self.client.get("/api/call", **header), 98)  # off: counted again
        with override_settings(TOLLGATE_IDEMPOTENCY_HEADER=True):
            for _ in range(3):
                self.assert_remaining(self.client.get("/api/call", **header), 97)  # @gate
            for _ in range(3):
                self.assert_remaining(self.client.post("/api/features/export", **header), 2)  # a route
            self.assert_remaining(self.client.get("/api/call"), 96)  # no header: counted
            for remaining in (95, 94):  # idempotency_key=False: never keyed
                self.assert_remaining(self.client.get("/api/unkeyed", **header), remaining)
        self.assertEqual((self.used("api_calls"), self.used("exports")), (6, 1))

    def test_a_header_name_of_your_own(self):
        with override_settings(TOLLGATE_IDEMPOTENCY_HEADER="X-Request-Id"):
            for _ in range(2):
                self.assert_remaining(self.client.get("/api/call", HTTP_X_REQUEST_ID="r1"), 99)
            for remaining in (98, 97):  # the default header is not the one named
                self.assert_remaining(self.client.get("/api/call", HTTP_IDEMPOTENCY_KEY="r2"), remaining)
        self.assertEqual(self.used("api_calls"), 3)

    def test_one_key_on_a_request_metered_on_two_features_counts_each_once(self):
        # POST /api/features/metered: the route meters exports, @gate api_calls, with the same header
        with override_settings(TOLLGATE_IDEMPOTENCY_HEADER=True):
            for _ in range(3):
                response = self.client.post("/api/features/metered", HTTP_IDEMPOTENCY_KEY="same")
                self.assertEqual(response.status_code, 200)
        self.assertEqual((self.used("api_calls"), self.used("exports")), (1, 1))

    def test_a_callable_key_wins_over_the_header(self):
        with override_settings(TOLLGATE_IDEMPOTENCY_HEADER=True):
            self.assert_remaining(self.client.get("/api/keyed?key=q", HTTP_IDEMPOTENCY_KEY="h1"), 99)
            self.assert_remaining(self.client.get("/api/keyed?key=q", HTTP_IDEMPOTENCY_KEY="h2"), 99)
            self.assert_remaining(self.client.get("/api/keyed", HTTP_IDEMPOTENCY_KEY="h1"), 98)  # None: no key

    def test_with_atomic_requests_a_raising_view_gives_the_key_back(self):
        raising = Client(raise_request_exception=False)
        raising.force_login(self.user)
        key = {"HTTP_IDEMPOTENCY_KEY": "boom"}
        with atomic_requests(True), override_settings(TOLLGATE_IDEMPOTENCY_HEADER=True):
            self.assertEqual(raising.get("/api/explode", **key).status_code, 500)
            self.assertEqual(self.used("api_calls"), 0)
            # the retry is counted, once
            self.assert_remaining(self.client.get("/api/call", **key), 99)
            self.assert_remaining(self.client.get("/api/call", **key), 99)
            # a 422 inside the request's transaction leaves it usable
            response = self.client.get("/api/keyed?key=a&amount=2")
            self.assertEqual(response.status_code, 200)
            self.assertEqual(self.client.get("/api/keyed?key=a&amount=3").status_code, 422)
        self.assertEqual(self.used("api_calls"), 3)

    def test_the_async_commit_variant_is_keyed_too(self):
        with override_settings(TOLLGATE_ASYNC_COMMIT=True), CaptureQueriesContext(connection) as queries:
            for _ in range(2):
                self.assert_remaining(self.client.get("/api/keyed?key=a"), 99)
        sql = [q["sql"] for q in queries.captured_queries if "tollgate.consume" in q["sql"]]
        self.assertTrue(all("synchronous_commit" in q for q in sql), sql)
        self.assertEqual(self.used("api_calls"), 1)

    @unittest.skipUnless(settings.HAVE_DRF, "Django REST framework is not installed (Debian: python3-djangorestframework)")
    def test_the_drf_permission_takes_a_key(self):
        for _ in range(3):
            self.assert_remaining(self.client.get("/drf/keyed?key=a"), 2)
        self.assert_remaining(self.client.get("/drf/keyed?key=b"), 1)
        response = self.client.get("/drf/keyed?key=" + "z" * 256)
        self.assertEqual(response.status_code, 422)
        self.assertEqual(response.json()["error"], "invalid_idempotency_key")
        self.assertEqual(self.used("exports"), 2)


class ConcurrentIdempotencyTests(TollgateTestCase):
    """Requests with the same Idempotency-Key at once: the later ones wait for the first's transaction
    (ATOMIC_REQUESTS holds it for the whole request), then get its answer, counting nothing; if the first
    rolls back, one of them counts."""

    waiters = 4

    def setUp(self):
        super().setUp()
        self.key = uuid.uuid4().hex
        self.hold = views.HOLDS[self.key] = views.Hold()
        self.addCleanup(views.HOLDS.pop, self.key, None)
        self.addCleanup(self.hold.release.set)  # never leave a thread waiting

    def request_in_thread(self, results, index):
        client = Client(raise_request_exception=False)
        client.force_login(self.user)

        def run():
            try:
                results[index] = client.get("/api/held", HTTP_IDEMPOTENCY_KEY=self.key)
            except BaseException as exc:  # reported by the test
                results[index] = exc
            finally:
                connections.close_all()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def lock_waiters(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock' AND query LIKE %s", ["%tollgate.consume%"])
            return cursor.fetchone()[0]

    def race(self):
        results = [None] * (1 + self.waiters)
        with atomic_requests(True), override_settings(TOLLGATE_IDEMPOTENCY_HEADER=True):
            threads = [self.request_in_thread(results, 0)]
            self.assertTrue(self.hold.entered.wait(DEADLINE), "the first request never reached its view")
            threads += [self.request_in_thread(results, i) for i in range(1, 1 + self.waiters)]
            wait_for(lambda: self.lock_waiters() == self.waiters, "%d requests waiting on the key" % self.waiters)
            self.hold.release.set()
            for thread in threads:
                thread.join(DEADLINE)
                self.assertFalse(thread.is_alive(), "a request never finished")
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def test_they_count_once(self):
        results = self.race()
        for response in results:
            self.assert_remaining(response, 99)
        self.assertEqual(self.used("api_calls"), 1)

    def test_when_the_first_rolls_back_one_waiting_request_counts(self):
        self.hold.fail = True
        results = self.race()
        self.assertEqual(results[0].status_code, 500)
        for response in results[1:]:
            self.assert_remaining(response, 99)
        self.assertEqual(self.used("api_calls"), 1)


class AdminTestCase(TollgateTestCase):
    databases = {"default", "admin"}


class GrantTests(AdminTestCase):
    def test_a_grant_is_spent_after_the_quota(self):
        tg.consume(self.customer, "api_calls", 100)
        self.assert_quota_exceeded(self.client.get("/api/call"), "api_calls", 100, 100)
        grant_id = tg.grant(self.customer, "api_calls", 3, expires_at=datetime.timedelta(days=30),
                            reason="stuck on a demo")
        self.assertIsInstance(grant_id, int)
        verdict = tg.check(self.customer, "api_calls")
        self.assertEqual((verdict.allowed, verdict.used, verdict.quota, verdict.remaining, verdict.granted,
                          verdict.available), (True, 100, 100, 0, 3, 3))
        for granted in (2, 1):
            response = self.client.get("/api/call")
            self.assert_remaining(response, 0)  # remaining stays the quota's
            self.assertEqual(response["X-Tollgate-Granted"], str(granted))
        response = self.client.get("/api/call")
        self.assert_remaining(response, 0)
        self.assertNotIn("X-Tollgate-Granted", response)  # none left
        self.assert_quota_exceeded(self.client.get("/api/call"), "api_calls", 103, 100)
        self.assertEqual(tg.check(self.customer, "api_calls").granted, 0)
        self.assertEqual([v.granted for v in tg.usage(self.customer)], [0, 0, 0])

    def test_a_key_grants_once(self):
        first = tg.grant(self.customer, "exports", 2, key="ticket-42")
        self.assertEqual(tg.grant(self.customer, "exports", 2, key="ticket-42"), first)
        self.assertEqual(tg.check(self.customer, "exports").granted, 2)
        with self.assertRaises(tg.InvalidArgument) as caught:
            tg.grant(self.customer, "exports", 3, key="ticket-42")
        self.assertEqual(sqlstate(caught.exception), "TG422")
        self.assertEqual(tg.check(self.customer, "exports").granted, 2)

    def test_the_template_tags_show_what_is_granted(self):
        tg.consume(self.customer, "api_calls", 80)
        tg.grant(self.customer, "api_calls", 50)
        response = self.client.get("/usage")
        self.assertContains(response, '<p id="api">80 of 100 API calls used, 50 more granted</p>', html=False)
        self.assertContains(response, "<li>0 of 3 exports used</li>")

    def test_customer_summary(self):
        tg.consume(self.customer, "api_calls", 7)
        grant_id = tg.grant(self.customer, "api_calls", 5, expires_at=datetime.timedelta(hours=2), reason="goodwill")
        tg.set_override(self.customer, "exports", 10, reason="beta tester")
        summary = tg.customer_summary(self.customer)
        self.assertEqual((summary["customer"], summary["known"], summary["plan"]), (self.customer, True, "free"))
        features = {f["feature"]: f for f in summary["features"]}
        self.assertEqual((features["api_calls"]["used"], features["api_calls"]["granted"]), (7, 5))
        [grant] = features["api_calls"]["grants"]
        self.assertEqual((grant["id"], grant["amount"], grant["spent"], grant["reason"]), (grant_id, 5, 0, "goodwill"))
        expires = parse_iso(grant["expires_at"])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs(expires - (now + datetime.timedelta(hours=2))), datetime.timedelta(minutes=5))
        self.assertEqual(features["exports"]["override"]["quota"], 10)
        self.assertEqual(features["exports"]["quota"], 10)

    def test_bad_arguments(self):
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        cases = [
            (lambda: tg.grant(self.customer, "no_such_feature", 1), tg.UnknownFeature, "TG404"),
            (lambda: tg.grant(self.customer, "api_calls", 0), tg.InvalidArgument, "TG422"),
            (lambda: tg.grant(self.customer, "api_calls", True), tg.InvalidArgument, "TG422"),
            (lambda: tg.grant(self.customer, "api_calls", 2 ** 63), tg.InvalidArgument, "TG422"),
            (lambda: tg.grant(self.customer, "api_calls", 1, expires_at=past), tg.InvalidArgument, "TG422"),
            (lambda: tg.grant(self.customer, "api_calls", 1, expires_at=datetime.timedelta(0)), tg.InvalidArgument,
             "TG422"),
            (lambda: tg.grant(self.customer, "api_calls", 1, expires_at=datetime.timedelta(days=999999999)),
             tg.InvalidArgument, "TG422"),
            (lambda: tg.grant(self.customer, "api_calls", 1, reason="r" * 1001), tg.InvalidArgument, "TG422"),
            (lambda: tg.grant("", "api_calls", 1), tg.InvalidArgument, "TG422"),
            (lambda: tg.grant(self.customer, "api_calls", 1, key="k" * 256), tg.InvalidArgument, "TG422"),
            (lambda: tg.set_override(self.customer, "api_calls", -1), tg.InvalidArgument, "TG422"),
            (lambda: tg.set_override(self.customer, "api_calls", 5, until=past), tg.InvalidArgument, "TG422"),
            (lambda: tg.set_override(self.customer, "no_such_feature", 5), tg.UnknownFeature, "TG404"),
            (lambda: tg.clear_override(self.customer, "no_such_feature"), tg.UnknownFeature, "TG404"),
            (lambda: tg.customer_summary(""), tg.InvalidArgument, "TG422"),
        ]
        for i, (call, cls, code) in enumerate(cases):
            with self.subTest(case=i, cls=cls.__name__):
                with self.assertRaises(cls) as caught:
                    call()
                self.assertEqual(sqlstate(caught.exception), code)
        verdict = tg.check(self.customer, "api_calls")
        self.assertEqual((verdict.quota, verdict.granted), (100, 0))  # nothing changed


class OverrideTests(AdminTestCase):
    def test_an_override_raises_lowers_and_clears(self):
        tg.consume(self.customer, "api_calls", 100)
        self.assert_quota_exceeded(self.client.get("/api/call"), "api_calls", 100, 100)
        tg.set_override(self.customer, "api_calls", 150, until=datetime.timedelta(days=7), reason="launch week")
        self.assert_remaining(self.client.get("/api/call"), 49)  # unblocked at once
        self.assertContains(self.client.get("/usage"), '<p id="api">101 of 150 API calls used</p>')
        tg.set_override(self.customer, "api_calls", 50)  # below the usage: blocks from the next call
        self.assert_quota_exceeded(self.client.get("/api/call"), "api_calls", 101, 50)
        tg.set_override(self.customer, "api_calls", None)  # unlimited
        response = self.client.get("/api/call")
        self.assertEqual(response.status_code, 200)
        self.assertNotIn("X-Tollgate-Remaining", response)
        self.assertTrue(tg.clear_override(self.customer, "api_calls"))
        self.assert_quota_exceeded(self.client.get("/api/call"), "api_calls", 102, 100)
        self.assertFalse(tg.clear_override(self.customer, "api_calls"))

    def test_an_override_ends_at_until(self):
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
        tg.set_override(self.customer, "exports", 5, until=until)
        summary = tg.customer_summary(self.customer)
        [exports] = [f for f in summary["features"] if f["feature"] == "exports"]
        self.assertEqual(parse_iso(exports["override"]["until"]), until)


class AdminAliasTests(AdminTestCase):
    """Only a member of tollgate_admin changes entitlements: the app's own user is refused."""

    def test_the_app_alias_is_refused(self):
        calls = [
            ("grant", lambda **kw: tg.grant(self.customer, "api_calls", 1000, **kw)),
            ("set_override", lambda **kw: tg.set_override(self.customer, "api_calls", None, **kw)),
            ("clear_override", lambda **kw: tg.clear_override(self.customer, "api_calls", **kw)),
            ("customer_summary", lambda **kw: tg.customer_summary(self.customer, **kw)),
        ]
        for name, call in calls:
            for how in ("setting", "using"):
                with self.subTest(function=name, how=how):
                    with self.assertRaises(tg.AdminRequired) as caught:
                        if how == "setting":  # TOLLGATE_ADMIN_DATABASE unset: the app's alias
                            with override_settings(TOLLGATE_ADMIN_DATABASE=None):
                                call()
                        else:
                            call(using="default")
                    err = caught.exception
                    self.assertIsInstance(err, DatabaseError)
                    self.assertEqual(sqlstate(err), "42501")
                    self.assertEqual((err.alias, err.function), ("default", name))
                    self.assertIn("tollgate_admin", err.message)
        verdict = tg.check(self.customer, "api_calls")
        self.assertEqual((verdict.quota, verdict.granted), (100, 0))
        # and the admin alias's user may not consume: it is a support tool, not the app
        with self.assertRaises(DatabaseError) as caught:
            tg.consume(self.customer, "api_calls", using="admin")
        self.assertEqual(sqlstate(caught.exception), "42501")

    def test_the_checks_know_the_admin_alias(self):
        from django.core import checks

        def ids(**overrides):
            with override_settings(**overrides):
                return sorted({m.id for m in checks.run_checks() if m.id.startswith("tollgate.")})

        self.assertEqual(ids(), [])
        self.assertEqual(ids(TOLLGATE_ADMIN_DATABASE="nowhere"), ["tollgate.E005"])
        self.assertEqual(ids(TOLLGATE_ADMIN_DATABASE="sqlite"), ["tollgate.E005"])
        self.assertEqual(ids(TOLLGATE_IDEMPOTENCY_HEADER=""), ["tollgate.E006"])
        self.assertEqual(ids(TOLLGATE_IDEMPOTENCY_HEADER=3), ["tollgate.E006"])
        self.assertEqual(ids(TOLLGATE_IDEMPOTENCY_HEADER="X-Request-Id"), [])


class ManagementCommandTests(AdminTestCase):
    def command(self, *args):
        """(stdout, None) of the command, or (None, CommandError)."""
        out = io.StringIO()
        try:
            call_command(*args, stdout=out, stderr=io.StringIO())
        except CommandError as err:
            return None, err
        return out.getvalue(), None

    def manage(self, *args):
        """The command as an operator runs it: manage.py in a process of its own; (exit status, stdout, stderr)."""
        done = subprocess.run([sys.executable, "manage.py"] + list(args), cwd=HERE, env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr

    def test_tollgate_grant(self):
        code, out, err = self.manage("tollgate_grant", self.customer, "api_calls", "50", "--expires", "30d",
                                     "--reason", "stuck on a demo")
        self.assertEqual(code, 0, err)
        self.assertEqual(err, "")
        verdict = tg.check(self.customer, "api_calls")
        self.assertEqual(verdict.granted, 50)
        summary = tg.customer_summary(self.customer)
        [grant] = [f for f in summary["features"] if f["feature"] == "api_calls"][0]["grants"]
        self.assertEqual(grant["reason"], "stuck on a demo")
        expires = parse_iso(grant["expires_at"])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs(expires - (now + datetime.timedelta(days=30))), datetime.timedelta(minutes=5))
        # the output names the amount, the grant and its expiry
        self.assertIn(" 50 api_calls ", out)
        self.assertIn("(grant %d)" % grant["id"], out)
        self.assertIn(expires.strftime("%Y-%m-%dT%H:%M:%S"), out)

    def test_tollgate_grant_with_a_key_grants_once(self):
        outputs = [self.command("tollgate_grant", self.customer, "exports", "2", "--key", "ticket-7")[0]
                   for _ in range(3)]
        self.assertEqual(len(set(outputs)), 1, outputs)
        self.assertEqual(tg.check(self.customer, "exports").granted, 2)
        _, err = self.command("tollgate_grant", self.customer, "exports", "3", "--key", "ticket-7")
        self.assertEqual(err.returncode, 2)  # the key was used for another amount
        self.assertEqual(tg.check(self.customer, "exports").granted, 2)

    def test_tollgate_grant_expiring_at_a_time(self):
        out, err = self.command("tollgate_grant", self.customer, "exports", "1", "--expires", "2100-01-31T00:00:00Z")
        self.assertIsNone(err)
        self.assertIn("2100-01-31T00:00:00Z", out)
        out, err = self.command("tollgate_grant", self.customer, "exports", "1", "--expires", "2100-01-31T02:00:00+02:00")
        self.assertIsNone(err)
        self.assertIn("2100-01-31T00:00:00Z", out)
        self.assertEqual(tg.check(self.customer, "exports").granted, 2)

    def test_tollgate_grant_bad_input(self):
        cases = [
            (("0",), 2), (("-5",), 2), (("many",), 2), (("9223372036854775808",), 2),
            (("1", "--expires", "0d"), 2), (("1", "--expires", "soon"), 2), (("1", "--expires", "3w"), 2),
            (("1", "--expires", "2100-01-31T00:00:00"), 2),  # no offset
            (("1", "--expires", "2000-01-01T00:00:00Z"), 2),  # in the past: tollgate refuses it (TG422)
            (("1", "--expires", "999999999d"), 2),
            (("1", "--reason", "r" * 1001), 2),
            (("1", "--database", "nowhere"), 2),
            (("1", "--database", "default"), 3),  # the app's user is not in tollgate_admin
        ]
        for extra, code in cases:
            with self.subTest(args=" ".join(extra)[:40]):
                out, err = self.command("tollgate_grant", self.customer, "api_calls", *extra)
                self.assertIsNone(out)
                self.assertEqual(err.returncode, code, str(err))
        _, err = self.command("tollgate_grant", self.customer, "no_such_feature", "1")
        self.assertEqual(err.returncode, 2)
        _, err = self.command("tollgate_grant", "", "api_calls", "1")
        self.assertEqual(err.returncode, 2)
        self.assertEqual(tg.check(self.customer, "api_calls").granted, 0)  # nothing granted

    def test_exit_statuses_of_manage_py(self):
        code, out, err = self.manage("tollgate_grant", self.customer, "api_calls")  # AMOUNT missing
        self.assertEqual((code, out), (2, ""))
        self.assertIn("usage:", err)
        code, out, err = self.manage("tollgate_grant", self.customer, "api_calls", "many")
        self.assertEqual((code, out), (2, ""))
        self.assertIn("AMOUNT", err)
        code, out, err = self.manage("tollgate_grant", self.customer, "api_calls", "5", "--database", "default")
        self.assertEqual((code, out), (3, ""))
        self.assertIn("tollgate_admin", err)
        code, out, err = self.manage("tollgate_override", self.customer, "api_calls", "unlimited")
        self.assertEqual((code, err), (0, ""))
        self.assertIsNone(tg.check(self.customer, "api_calls").quota)
        self.assertEqual(tg.check(self.customer, "api_calls").granted, None)  # unlimited: nothing to grant on

    def test_tollgate_override(self):
        out, err = self.command("tollgate_override", self.customer, "exports", "10", "--until", "7d",
                                "--reason", "beta")
        self.assertIsNone(err)
        self.assertIn("a quota of 10 exports", out)
        verdict = tg.check(self.customer, "exports")
        self.assertEqual((verdict.quota, verdict.remaining), (10, 10))
        out, err = self.command("tollgate_override", self.customer, "exports", "0")
        self.assertIsNone(err)
        self.assertFalse(tg.check(self.customer, "exports").allowed)
        out, _ = self.command("tollgate_override", self.customer, "exports", "--clear")
        self.assertIn("Cleared", out)
        self.assertEqual(tg.check(self.customer, "exports").quota, 3)
        out, _ = self.command("tollgate_override", self.customer, "exports", "--clear")
        self.assertIn("no override", out)
        cases = [
            (("exports",), 2), (("exports", "-1"), 2), (("exports", "lots"), 2),
            (("exports", "5", "--clear"), 2), (("exports", "--clear", "--until", "1d"), 2),
            (("exports", "5", "--until", "0h"), 2), (("no_such_feature", "5"), 2),
            (("exports", "5", "--database", "default"), 3),
        ]
        for args, code in cases:
            with self.subTest(args=" ".join(args)):
                out, err = self.command("tollgate_override", self.customer, *args)
                self.assertIsNone(out)
                self.assertEqual(err.returncode, code, str(err))
        self.assertEqual(tg.check(self.customer, "exports").quota, 3)
