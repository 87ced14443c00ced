"""python manage.py tollgate_override CUSTOMER FEATURE QUOTA|unlimited [--until 7d] [--reason ...] | --clear"""

from django.core.management.base import CommandError

from tollgate_django.entitlements import clear_override, set_override
from tollgate_django.management.base import EXIT_INPUT, EntitlementCommand, parse_integer, parse_moment, when


class Command(EntitlementCommand):
    help = ("Gives a customer its own quota of FEATURE in place of the plan's (a number, or 'unlimited'), until "
            "--until or until --clear. The database user needs tollgate_admin (TOLLGATE_ADMIN_DATABASE). "
            "Exit status: 0 done, 2 wrong input (also refused by tollgate), 3 the database user may not, "
            "1 the database failed.")

    def add_arguments(self, parser):
        parser.add_argument("customer", help="the customer key (what your app calls a customer, e.g. a user id)")
        parser.add_argument("feature", help="the feature, as in tollgate.yaml")
        parser.add_argument("quota", nargs="?", help="the customer's quota: a whole number from 0, or 'unlimited'")
        parser.add_argument("--until", metavar="WHEN",
                            help="when the plan's quota applies again: a duration from now (30d, 12h, 90m) or a "
                                 "time with its offset (2030-01-31T00:00:00Z); default: until --clear")
        parser.add_argument("--reason", help="why, for support (at most 1000 characters)")
        parser.add_argument("--clear", action="store_true", help="remove the override: the plan's quota again")
        self.add_database_argument(parser)

    def handle(self, *args, **options):
        customer, feature = options["customer"], options["feature"]
        if options["clear"]:
            if options["quota"] is not None or options["until"] is not None or options["reason"] is not None:
                raise CommandError("--clear takes no QUOTA, --until or --reason", returncode=EXIT_INPUT)
            cleared = self.call(clear_override, customer, feature, using=self.alias(options))
            if cleared:
                self.stdout.write("Cleared customer %s's override of %s: the plan's quota applies again."
                                  % (customer, feature))
            else:
                self.stdout.write("Customer %s had no override of %s: nothing changed." % (customer, feature))
            return
        if options["quota"] is None:
            raise CommandError("give the QUOTA (a whole number, or 'unlimited'), or --clear", returncode=EXIT_INPUT)
        quota = None if options["quota"] == "unlimited" else parse_integer("QUOTA", options["quota"], 0)
        until = parse_moment("--until", options["until"]) if options["until"] is not None else None
        self.call(set_override, customer, feature, quota, until=until, reason=options["reason"],
                  using=self.alias(options))
        self.stdout.write("Customer %s now has %s in place of the plan's quota, %s." % (
            customer, "unlimited %s" % feature if quota is None else "a quota of %d %s" % (quota, feature),
            "until %s" % when(until) if until is not None else "until cleared"))
