"""The shop's own tests: Django's runner, a test database with tollgate in it, TestCase and TransactionTestCase.

Features (tollgate.yaml): searches 5 per 30 days on free (@gate), exports 2 per month (the route POST
/notes/export), notes 2 for life (a row gate on notes_note). pro: price_shop_pro.
"""

import uuid

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import TestCase, TransactionTestCase

import tollgate_django as tg
from tollgate_django.testing import TollgateAssertions, plan, plan_of, reset_usage, set_plan, set_usage, usage_of

from .models import Note

# One customer key for every TransactionTestCase test: usage that leaked from one test to the next shows.
FIXED = "shop-fixed-customer"


class ShopTestsMixin(TollgateAssertions):
    def setUp(self):
        self.user = get_user_model().objects.create(username="u-" + uuid.uuid4().hex[:12])
        self.customer = str(self.user.pk)
        self.client.force_login(self.user)


class GatesInATestCase(ShopTestsMixin, TestCase):
    def test_the_test_database_has_tollgate_and_the_apps_config(self):
        self.assertEqual(connection.settings_dict["NAME"][:5], "test_")
        self.assertEqual([v.feature for v in tg.usage(self.customer)], ["exports", "notes", "searches"])

    def test_searches_are_counted_then_blocked(self):
        for remaining in (4, 3, 2, 1, 0):
            self.assertAllowed(self.client.get("/notes/search"), remaining=remaining)
        body = self.assertBlocked(self.client.get("/notes/search"), feature="searches")
        self.assertEqual((body["used"], body["quota"]), (5, 5))
        self.assertUsage(self.customer, "searches", 5)

    def test_a_route_counts(self):
        self.assertAllowed(self.client.post("/notes/export"), remaining=1)
        self.assertUsage(self.customer, "exports", 1)

    def test_a_row_gate_blocks_and_the_test_goes_on(self):
        Note.objects.create(owner=self.user, text="one")
        Note.objects.create(owner=self.user, text="two")
        with self.assertBlocked(feature="notes"):
            Note.objects.create(owner=self.user, text="three")
        self.assertEqual(Note.objects.filter(owner=self.user).count(), 2)
        self.assertBlocked(self.client.post("/notes", {"text": "three"}), feature="notes")
        self.assertEqual(Note.objects.filter(owner=self.user).count(), 2)  # the transaction still works

    def test_set_usage_and_plans(self):
        set_usage(self.customer, "searches", 5)
        self.assertBlocked(self.client.get("/notes/search"))
        with plan(self.customer, "pro"):
            self.assertEqual(plan_of(self.customer), "pro")
            self.assertAllowed(self.client.get("/notes/search"))
        self.assertEqual(plan_of(self.customer), "free")
        self.assertBlocked(self.client.get("/notes/search"))
        set_usage(self.customer, "searches", 1)
        self.assertAllowed(self.client.get("/notes/search"), remaining=3)
        with self.assertRaises(ValueError):
            set_usage(self.customer, "searches", 6)  # over the quota

    def test_assertblocked_fails_when_nothing_is_blocked(self):
        with self.assertRaises(AssertionError):
            self.assertBlocked(self.client.get("/notes/search"))
        with self.assertRaises(AssertionError):
            with self.assertBlocked(feature="notes"):
                Note.objects.create(owner=self.user, text="fits")


class UsageDoesNotLeakBetweenTransactionTestCases(ShopTestsMixin, TransactionTestCase):
    """Each test commits for real; the runner resets tollgate after Django's flush, so each starts at 0."""

    def consume_fixed(self):
        self.assertUsage(FIXED, "searches", 0)
        self.assertEqual(tg.consume(FIXED, "searches", 3).used, 3)
        set_plan(FIXED, "pro")

    def test_one(self):
        self.consume_fixed()

    def test_two(self):
        self.consume_fixed()

    def test_three(self):
        self.assertEqual(plan_of(FIXED), "free")
        self.consume_fixed()

    def test_reset_usage_by_hand(self):
        tg.consume(FIXED, "searches", 2)
        reset_usage()
        self.assertEqual(usage_of(FIXED, "searches"), 0)
