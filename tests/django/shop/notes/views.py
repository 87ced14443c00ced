from django.http import JsonResponse
from django.views.decorators.http import require_POST

from tollgate_django import gate

from .models import Note


@gate("searches")
def search(request):
    return JsonResponse({"results": []})


@require_POST
def export(request):
    """Gated by the route POST /notes/export of tollgate.yaml."""
    return JsonResponse({"exported": True})


@require_POST
def create_note(request):
    note = Note.objects.create(owner=request.user, text=request.POST.get("text", ""))
    return JsonResponse({"id": note.pk}, status=201)
