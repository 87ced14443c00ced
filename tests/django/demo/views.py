import threading

from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from tollgate_django import QuotaExceeded, gate

from .models import Project


@gate("api_calls")
def api_call(request):
    return JsonResponse({"ok": True})


@gate("api_calls", amount=5)
def api_bulk(request):
    return JsonResponse({"ok": True})


@gate("api_calls", customer=lambda request: request.headers.get("X-Team"))
def team_call(request):
    return JsonResponse({"ok": True})


@gate("api_calls")
def explode(request):
    raise RuntimeError("the view fails after its gate consumed")


@gate("api_calls", amount=lambda request: int(request.GET.get("amount", "1")),
      idempotency_key=lambda request: request.GET.get("key"))
def keyed_call(request):
    """A key of the client's choosing, from the query string: retries with the same key count once."""
    return JsonResponse({"ok": True})


@gate("api_calls", idempotency_key=False)
def unkeyed_call(request):
    """Never keyed, even with TOLLGATE_IDEMPOTENCY_HEADER set."""
    return JsonResponse({"ok": True})


class Hold:
    """Holds the requests of /api/held whose Idempotency-Key is registered, inside their view."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail = False


HOLDS = {}


@gate("api_calls")
def held_call(request):
    """@gate with TOLLGATE_IDEMPOTENCY_HEADER: the view waits (at most 60 s) until the test releases it."""
    hold = HOLDS.get(request.headers.get("Idempotency-Key"))
    if hold is not None and not hold.entered.is_set():
        hold.entered.set()
        if not hold.release.wait(60):
            raise RuntimeError("the test never released the held request")
        if hold.fail:
            raise RuntimeError("the first request fails after its gate consumed")
    return JsonResponse({"ok": True})


def feature(request, name):
    """No decorator: the route POST /api/features/* gates it through the middleware."""
    if name == "gated":
        return gated_feature(request, name)
    if name == "metered":
        return metered_feature(request, name)
    if name == "explode":
        raise RuntimeError("the view fails after the middleware consumed")
    return JsonResponse({"feature": name})


@gate("exports")
def gated_feature(request, name):
    """POST /api/features/gated: the route and this decorator meter exports; the request counts once."""
    return JsonResponse({"feature": name})


@gate("api_calls")
def metered_feature(request, name):
    """POST /api/features/metered: the route meters exports, this decorator api_calls."""
    return JsonResponse({"feature": name})


def reports(request):
    """No decorator: the route * /api/reports (amount 2) gates it through the middleware."""
    return JsonResponse({"ok": True})


@require_POST
def create_project(request):
    """The row gate raises QuotaExceeded on the 4th project; the middleware renders it as 402."""
    project = Project.objects.create(owner=request.user, name=request.POST.get("name", "project"))
    return JsonResponse({"id": project.pk}, status=201)


@require_POST
def try_project(request):
    """Catches the row gate's QuotaExceeded itself, after its own transaction was rolled back."""
    try:
        with transaction.atomic():
            project = Project.objects.create(owner=request.user, name="project")
    except QuotaExceeded as err:
        return JsonResponse({"upgrade": err.upgrade_message})
    return JsonResponse({"id": project.pk}, status=201)


def usage_page(request):
    return render(request, "demo/usage.html")


def drf_ping():
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from tollgate_django.permissions import gate_permission

    class Ping(APIView):
        permission_classes = [gate_permission("exports")]

        def get(self, request):
            return Response({"ok": True})

    return Ping.as_view()


def drf_browsable():
    """A gated view that browsers see through DRF's browsable API, which shows a form for POST."""
    from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from tollgate_django.permissions import gate_permission

    class Browsable(APIView):
        permission_classes = [gate_permission("exports")]
        renderer_classes = [BrowsableAPIRenderer, JSONRenderer]

        def get(self, request):
            return Response({"ok": True})

        def post(self, request):
            return Response({"ok": True})

        def put(self, request):
            return Response({"ok": True})

    return Browsable.as_view()


def drf_routed():
    """No tollgate code: the route * /drf/routed of tollgate.yaml gates it, after DRF's token authentication."""
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class Routed(APIView):
        def get(self, request):
            return Response({"user": request.user.pk})

    return Routed.as_view()


def drf_routed_and_permission():
    """A route (* /drf/routed-and-permission, exports) and a permission for the same feature: counted once."""
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from tollgate_django.permissions import gate_permission

    class Both(APIView):
        permission_classes = [gate_permission("exports")]

        def get(self, request):
            return Response({"ok": True})

    return Both.as_view()


def drf_keyed():
    """A permission with an idempotency key from the query string (?key=...)."""
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from tollgate_django.permissions import gate_permission

    class Keyed(APIView):
        permission_classes = [gate_permission("exports", idempotency_key=lambda request: request.GET.get("key"))]

        def get(self, request):
            return Response({"ok": True})

    return Keyed.as_view()
