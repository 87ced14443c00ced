from django.conf import settings
from django.contrib import admin
from django.urls import path

from demo import views

urlpatterns = [
    path("api/call", views.api_call),
    path("api/bulk", views.api_bulk),
    path("api/team", views.team_call),
    path("api/explode", views.explode),
    path("api/keyed", views.keyed_call),
    path("api/unkeyed", views.unkeyed_call),
    path("api/held", views.held_call),
    path("api/features/<str:name>", views.feature),
    path("api/reports", views.reports),
    path("projects", views.create_project),
    path("projects/try", views.try_project),
    path("usage", views.usage_page),
    path("admin/", admin.site.urls),
]

if settings.HAVE_DRF:
    urlpatterns += [
        path("drf/ping", views.drf_ping()),
        path("drf/browsable", views.drf_browsable()),
        path("drf/routed", views.drf_routed()),
        path("drf/routed-and-permission", views.drf_routed_and_permission()),
        path("drf/keyed", views.drf_keyed()),
    ]
