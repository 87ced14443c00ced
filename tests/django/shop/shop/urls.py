from django.urls import path

from notes import views

urlpatterns = [
    path("notes/search", views.search),
    path("notes/export", views.export),
    path("notes", views.create_note),
]
