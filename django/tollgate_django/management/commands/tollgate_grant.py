"""python manage.py tollgate_grant CUSTOMER FEATURE AMOUNT [--expires 30d] [--reason ...] [--key ...]"""

from tollgate_django.entitlements import grant
from tollgate_django.management.base import EntitlementCommand, parse_integer, parse_moment, when


class Command(EntitlementCommand):
    help = ("Grants a customer AMOUNT units of FEATURE on top of the plan's quota, spent once a window's quota "
            "is used up, until they expire. The database user needs tollgate_admin (TOLLGATE_ADMIN_DATABASE). "
            "Exit status: 0 granted, 2 wrong input (also refused by tollgate), 3 the database user may not, "
            "1 the database failed.")

    def add_arguments(self, parser):
        parser.add_argument("customer", help="the customer key (what your app calls a customer, e.g. a user id)")
        parser.add_argument("feature", help="the feature, as in tollgate.yaml")
        parser.add_argument("amount", help="how many units, a whole number above 0")
        parser.add_argument("--expires", metavar="WHEN",
                            help="when the units expire: a duration from now (30d, 12h, 90m, 1h30m) or a time "
                                 "with its offset (2030-01-31T00:00:00Z); default: never")
        parser.add_argument("--reason", help="why, for support (at most 1000 characters)")
        parser.add_argument("--key", help="makes the grant idempotent: the same key for the customer grants once "
                                          "however often the command runs")
        self.add_database_argument(parser)

    def handle(self, *args, **options):
        customer, feature = options["customer"], options["feature"]
        amount = parse_integer("AMOUNT", options["amount"], 1)
        expires_at = parse_moment("--expires", options["expires"]) if options["expires"] is not None else None
        alias = self.alias(options)
        grant_id = self.call(grant, customer, feature, amount, expires_at=expires_at, reason=options["reason"],
                             key=options["key"], using=alias)
        line = "Granted %d %s to customer %s (grant %s), %s." % (
            amount, feature, customer, grant_id,
            "expiring %s" % when(expires_at) if expires_at is not None else "not expiring")
        if options["key"] is not None:
            line += " With key %s it is granted once, however often this runs." % options["key"]
        self.stdout.write(line)
