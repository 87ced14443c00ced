"""Signed upgrade links in the Django helper: the 402 JSON's upgrade_url, the 402 page and the
{% tollgate_upgrade_url %} tag carry the customer's link (django_test.go turns links on in the database, as
the sidecar does), and fall back to TOLLGATE_UPGRADE_URL whenever there is none."""

import html
import re
import time
from unittest import mock

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.test import Client

import tollgate_django as tg

from .tests import BROWSER_ACCEPT, LINK_PREFIX, TollgateTestCase, owner_query, verify_link


class UpgradeLinkTests(TollgateTestCase):
    def block(self):
        tg.consume(self.customer, "api_calls", 100)
        return self.client.get("/api/call")

    def test_the_402_carries_the_customers_link(self):
        response = self.block()
        self.assertEqual(response.status_code, 402)
        link = verify_link(response.json()["upgrade_url"])
        self.assertEqual(link["customer"], self.customer)
        self.assertEqual(link["feature"], "api_calls")
        # the prompt it answers: the customer's limit_reached event of the feature
        (event,), = owner_query("SELECT id FROM tollgate.events WHERE customer = %s AND feature = 'api_calls' "
                                "AND kind = 'limit_reached'", [self.customer])
        self.assertEqual(int(link["event"]), event)
        self.assertEqual(link["email"], "")
        self.assertAlmostEqual(link["expires"], time.time() + 30 * 86400, delta=300)

    def test_the_402_page_and_the_tag_link_to_it(self):
        tg.consume(self.customer, "api_calls", 100)
        response = self.client.get("/api/call", HTTP_ACCEPT=BROWSER_ACCEPT)
        self.assertEqual(response.status_code, 402)
        href = re.search(r'<a class="upgrade" href="([^"]+)"', response.content.decode()).group(1)
        self.assertEqual(verify_link(html.unescape(href))["customer"], self.customer)
        page = self.client.get("/usage").content.decode()
        href = re.search(r'<a id="upgrade" href="([^"]+)"', page).group(1)
        self.assertEqual(verify_link(html.unescape(href))["feature"], "api_calls")
        # without a customer: the static page
        self.assertContains(Client().get("/usage"), '<a id="upgrade" href="%s"' % settings.TOLLGATE_UPGRADE_URL)

    def test_the_helper_mints_links_too(self):
        self.assertEqual(verify_link(tg.upgrade_link(self.customer, "exports"))["feature"], "exports")
        with self.assertRaises(tg.UnknownFeature):
            tg.upgrade_link(self.customer, "nope")

    def test_without_a_link_the_static_page(self):
        tg.consume(self.customer, "api_calls", 100)
        with mock.patch("tollgate_django.db.upgrade_link", return_value=None):  # links off
            self.assertEqual(self.client.get("/api/call").json()["upgrade_url"], settings.TOLLGATE_UPGRADE_URL)
        with mock.patch("tollgate_django.db.upgrade_link", side_effect=DatabaseError("down")):
            response = self.client.get("/api/call")
            self.assertEqual(response.status_code, 402)
            self.assertEqual(response.json()["upgrade_url"], settings.TOLLGATE_UPGRADE_URL)

    def test_a_failed_link_leaves_the_transaction_usable(self):
        from tollgate_django.http import upgrade_url

        with transaction.atomic():
            self.assertEqual(upgrade_url(self.customer, "nope"), settings.TOLLGATE_UPGRADE_URL)  # TG404, in a savepoint
            self.assertEqual(tg.check(self.customer, "api_calls").used, 0)  # the transaction goes on
        # a transaction an error broke: no query can run in it, the static page without trying
        with transaction.atomic():
            with self.assertRaises(DatabaseError):
                with transaction.atomic():
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT 1/0")
            transaction.set_rollback(True)
            with mock.patch("tollgate_django.db.upgrade_link") as link:
                self.assertEqual(upgrade_url(self.customer, "api_calls"), settings.TOLLGATE_UPGRADE_URL)
                link.assert_not_called()

    def test_a_routes_402_gets_the_link_too(self):
        tg.consume(self.customer, "exports", 3)
        response = self.client.post("/api/features/x")  # the route's gate: exports
        body = self.assert_quota_exceeded(response, "exports", used=3, quota=3)
        self.assertTrue(body["upgrade_url"].startswith(LINK_PREFIX))
