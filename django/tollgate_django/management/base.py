"""What tollgate's management commands share: durations, times, exit codes, error messages."""

import datetime
import re

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils.dateparse import parse_datetime

from ..entitlements import admin_alias
from ..errors import AdminRequired, TollgateError, UnknownFeature
from ..http import isoformat

#: exit codes: 1 the database failed otherwise, 2 the input is wrong (the command line, or tollgate refused it),
#: 3 the database user may not (not a member of tollgate_admin)
EXIT_ERROR, EXIT_INPUT, EXIT_NOT_ALLOWED = 1, 2, 3

_DURATION = re.compile(r"^(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?$")


def parse_moment(option, value):
    """--expires / --until: a duration from now as in tollgate.yaml (30d, 12h, 90m, 1h30m) or an ISO 8601 time
    with its offset (2030-01-31T00:00:00Z): an aware datetime."""
    match = _DURATION.match(value or "")
    if value and match:
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        delta = datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if delta <= datetime.timedelta(0):
            raise CommandError("%s %s: the duration must be more than 0" % (option, value), returncode=EXIT_INPUT)
        try:
            moment = datetime.datetime.now(datetime.timezone.utc) + delta
            # whole seconds, rounded up: what the output says is what is stored
            return moment.replace(microsecond=0) + datetime.timedelta(seconds=1 if moment.microsecond else 0)
        except OverflowError:
            raise CommandError("%s %s: too far in the future" % (option, value), returncode=EXIT_INPUT) from None
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError("%s %r is neither a duration (30d, 12h, 90m, 1h30m) nor a time such as "
                           "2030-01-31T00:00:00Z" % (option, value), returncode=EXIT_INPUT)
    if moment.tzinfo is None:
        raise CommandError("%s %s: give the time's offset, such as 2030-01-31T00:00:00Z or +02:00"
                           % (option, value), returncode=EXIT_INPUT)
    return moment


def parse_integer(name, value, minimum):
    """A positional integer argument, from minimum to bigint's maximum."""
    try:
        number = int(value, 10)
    except (TypeError, ValueError):
        raise CommandError("%s must be a whole number, not %r" % (name, value), returncode=EXIT_INPUT) from None
    if number < minimum or number > 2 ** 63 - 1:
        raise CommandError("%s must be from %d to %d, not %s" % (name, minimum, 2 ** 63 - 1, value),
                           returncode=EXIT_INPUT)
    return number


def when(moment):
    return isoformat(moment)


class EntitlementCommand(BaseCommand):
    """A command that changes entitlements through TOLLGATE_ADMIN_DATABASE (or --database)."""

    def add_database_argument(self, parser):
        parser.add_argument(
            "--database", default=None,
            help="the database alias whose user is a member of tollgate_admin (default: TOLLGATE_ADMIN_DATABASE, "
                 "else TOLLGATE_DATABASE)")

    def alias(self, options):
        from django.conf import settings

        alias = options.get("database") or admin_alias()
        if alias not in settings.DATABASES:
            raise CommandError("no database alias %r in DATABASES" % alias, returncode=EXIT_INPUT)
        return alias

    def call(self, function, *args, **kwargs):
        """Runs an entitlement function; its errors become CommandErrors with their exit codes."""
        try:
            return function(*args, **kwargs)
        except AdminRequired as err:
            raise CommandError("%s (or pass --database)" % err.message, returncode=EXIT_NOT_ALLOWED) from err
        except UnknownFeature as err:
            raise CommandError("%s: tollgate apply writes the features of tollgate.yaml" % err.message,
                               returncode=EXIT_INPUT) from err
        except TollgateError as err:  # TG422 and the checks before any query
            message = err.message + (" (%s)" % err.hint if err.hint else "")
            raise CommandError(message, returncode=EXIT_INPUT) from err
        except DatabaseError as err:
            raise CommandError("the database failed: %s" % (str(err).strip() or type(err).__name__),
                               returncode=EXIT_ERROR) from err
