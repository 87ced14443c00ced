#!/usr/bin/env python3
"""What a tollgate gate adds to a Django request, in each transaction mode: a table of p50/p90 latencies.

    python3 django/bench/gate_cost.py --database-url APP_URL --owner-url OWNER_URL [--requests 2000]

APP_URL is a login role that is a member of tollgate_app (what Django uses), OWNER_URL tollgate's owner (to
add the bench's feature, route and table, removed again at the end). `go test -run '^$' -bench GateCost
./tests/django` runs it on a throwaway PostgreSQL on disk with fsync on, so that a commit costs what it
costs in production; `tollgate dev` prints both URLs of its database too.

Each request goes through Django's WSGI handler with TollgateMiddleware (no other middleware, a customer
from a header, a persistent connection: CONN_MAX_AGE = None), over --customers customers in turn. The
scenarios run interleaved in rounds, so drift of a shared machine hits them alike; "added" is the p50 of
a scenario minus the p50 of its baseline (the same view without the gate, in the same mode).
"""

import argparse
import io
import os
import statistics
import sys
import time
from urllib.parse import parse_qsl, unquote, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # tollgate_django

FEATURE = "bench_calls"
TABLE = "tollgate_bench_rows"
ROUTE = "/bench/route/"


def database(url):
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": options.pop("host", None) or parts.hostname or "",
        "PORT": str(options.pop("port", None) or parts.port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": None,
        "ATOMIC_REQUESTS": False,
    }


def customer(request):
    return request.META.get("HTTP_X_BENCH_CUSTOMER")


# --- the views ------------------------------------------------------------------------------------------


def _views():
    from django.db import connection, transaction
    from django.http import JsonResponse
    from django.urls import path

    from tollgate_django import consume, gate

    def write(request):
        with connection.cursor() as cursor:
            cursor.execute("UPDATE %s SET n = n + 1 WHERE id = %%s" % TABLE, [int(customer(request))])
        return JsonResponse({"ok": True})

    def plain(request):
        return JsonResponse({"ok": True})

    def atomic_write(request):
        with transaction.atomic():
            return write(request)

    def atomic_write_consume(request):
        with transaction.atomic():
            verdict = consume(customer(request), FEATURE)
            if not verdict.allowed:
                return JsonResponse({"error": "quota_exceeded"}, status=402)
            return write(request)

    return [
        path("bench/plain", plain),
        path("bench/gate", gate(FEATURE)(plain)),
        path("bench/write", write),
        path("bench/gate-write", gate(FEATURE)(write)),
        path("bench/route/write", write),
        path("bench/atomic-write", atomic_write),
        path("bench/atomic-write-consume", atomic_write_consume),
    ]


urlpatterns = []

# name, what it is, path, mode, baseline name
#   modes: autocommit (Django's default), async (autocommit and TOLLGATE_ASYNC_COMMIT), atomic (ATOMIC_REQUESTS)
SCENARIOS = [
    ("plain", "a view without a query", "/bench/plain", "autocommit", None),
    ("gate", "@gate on it: consume is its own transaction", "/bench/gate", "autocommit", "plain"),
    ("gate_async", "the same, TOLLGATE_ASYNC_COMMIT = True", "/bench/gate", "async", "plain"),
    ("write", "a view with one UPDATE (its own transaction)", "/bench/write", "autocommit", None),
    ("gate_write", "@gate on it", "/bench/gate-write", "autocommit", "write"),
    ("gate_write_async", "the same, TOLLGATE_ASYNC_COMMIT = True", "/bench/gate-write", "async", "write"),
    ("route_write", "a route of tollgate.yaml on it", "/bench/route/write", "autocommit", "write"),
    ("atomic_write", "the UPDATE view, ATOMIC_REQUESTS", "/bench/write", "atomic", None),
    ("atomic_gate_write", "@gate on it: consume in the view's transaction", "/bench/gate-write", "atomic",
     "atomic_write"),
    ("atomic_route_write", "a route on it: consume in the request's transaction", "/bench/route/write",
     "atomic", "atomic_write"),
    ("inline_write", "UPDATE inside transaction.atomic() in the view", "/bench/atomic-write", "autocommit", None),
    ("inline_consume_write", "consume() + UPDATE in that atomic block", "/bench/atomic-write-consume",
     "autocommit", "inline_write"),
]


# --- setup ----------------------------------------------------------------------------------------------


def owner_setup(owner_url, app_user, customers):
    import psycopg2

    conn = psycopg2.connect(owner_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT plan FROM tollgate.plans WHERE is_default")
        row = cur.fetchone()
        if row is None:
            cur.execute("SELECT tollgate.define_plan('free', is_default => true)")
            plan = "free"
        else:
            plan = row[0]
        cur.execute("SELECT tollgate.define_feature(%s, '30d')", [FEATURE])
        cur.execute("SELECT tollgate.set_limit(%s, %s, %s)", [plan, FEATURE, 10 ** 15])  # limited, never reached
        cur.execute("SELECT tollgate.define_route('GET', %s, %s)", [ROUTE + "*", FEATURE])
        cur.execute("DROP TABLE IF EXISTS public.%s" % TABLE)
        cur.execute("CREATE TABLE public.%s (id integer PRIMARY KEY, n bigint NOT NULL DEFAULT 0)" % TABLE)
        cur.execute("INSERT INTO public.%s (id) SELECT generate_series(1, %%s)" % TABLE, [customers])
        cur.execute("GRANT SELECT, UPDATE ON public.%s TO %s" % (TABLE, app_user))
        cur.execute("ANALYZE public.%s" % TABLE)
    return conn


def owner_teardown(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT tollgate.remove_route('GET', %s)", [ROUTE + "*"])
        cur.execute("SELECT tollgate.remove_feature(%s)", [FEATURE])
        cur.execute("DROP TABLE IF EXISTS public.%s" % TABLE)
    conn.close()


def configure(app_url):
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["bench"],
        USE_TZ=True,
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["tollgate_django"],
        MIDDLEWARE=["tollgate_django.TollgateMiddleware"],
        DATABASES={"default": database(app_url)},
        TOLLGATE_CUSTOMER=__name__ + ".customer",
        TOLLGATE_ROUTES_CACHE_SECONDS=3600,
    )
    django.setup()
    urlpatterns.extend(_views())


# --- measuring ------------------------------------------------------------------------------------------


def request(handler, path, key):
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "bench", "HTTP_ACCEPT": "application/json", "HTTP_X_BENCH_CUSTOMER": key,
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)

    body = handler(environ, start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    if not status[0].startswith("200"):
        raise RuntimeError("%s answered %s" % (path, status[0]))


def run(args):
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections
    from django.test.utils import override_settings

    handler = WSGIHandler()
    settings_dict = connections["default"].settings_dict
    samples = {name: [] for name, *_ in SCENARIOS}
    counter = [0]

    def batch(name, path, mode, n, keep):
        settings_dict["ATOMIC_REQUESTS"] = mode == "atomic"
        with override_settings(TOLLGATE_ASYNC_COMMIT=mode == "async"):
            for _ in range(n):
                counter[0] += 1
                key = str(counter[0] % args.customers + 1)
                start = time.perf_counter_ns()
                request(handler, path, key)
                elapsed = time.perf_counter_ns() - start
                if keep:
                    samples[name].append(elapsed / 1e6)

    for name, _, path, mode, _ in SCENARIOS:  # warm up: connections, caches, the customers' usage rows
        batch(name, path, mode, max(args.customers // 4, 10), keep=False)
    per_round = max(args.requests // args.rounds, 1)
    for _ in range(args.rounds):
        for name, _, path, mode, _ in SCENARIOS:
            batch(name, path, mode, per_round, keep=True)
    return samples


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * p), len(ordered) - 1)]


def table(samples, out):
    p50 = {name: statistics.median(v) for name, v in samples.items()}
    rows = [("scenario", "mode", "what", "requests", "p50 ms", "p90 ms", "added p50 ms", "x baseline")]
    for name, what, _, mode, baseline in SCENARIOS:
        added = ratio = ""
        if baseline is not None:
            added = "%+.3f" % (p50[name] - p50[baseline])
            ratio = "%.2f" % (p50[name] / p50[baseline])
        rows.append((name, mode, what, str(len(samples[name])), "%.3f" % p50[name],
                     "%.3f" % pct(samples[name], 0.9), added, ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [r[i].ljust(widths[i]) if i < 3 else r[i].rjust(widths[i]) for i in range(len(r))]
        print("  ".join(cells).rstrip(), file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TOLLGATE_BENCH_DATABASE_URL"),
                        help="a member of tollgate_app (default $TOLLGATE_BENCH_DATABASE_URL)")
    parser.add_argument("--owner-url", default=os.environ.get("TOLLGATE_BENCH_OWNER_URL"),
                        help="tollgate's owner (default $TOLLGATE_BENCH_OWNER_URL)")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per scenario (2000)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds the requests are spread over (10)")
    parser.add_argument("--customers", type=int, default=1000, help="customers the requests go round (1000)")
    args = parser.parse_args(argv)
    if not args.database_url or not args.owner_url:
        parser.error("--database-url and --owner-url are needed")
    if args.requests < 1 or args.rounds < 1 or args.customers < 1:
        parser.error("--requests, --rounds and --customers are at least 1")

    app_user = unquote(urlsplit(args.database_url).username or "")
    if not app_user.replace("_", "").isalnum():
        parser.error("the role of --database-url must be a plain name")
    owner = owner_setup(args.owner_url, app_user, args.customers)
    try:
        configure(args.database_url)
        samples = run(args)
    finally:
        owner_teardown(owner)
    import django

    print("tollgate gate cost: Django %s, %d requests per scenario over %d customers, %d rounds"
          % (django.get_version(), args.requests, args.customers, args.rounds))
    print()
    table(samples, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
