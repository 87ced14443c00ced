from django.contrib import admin

from tollgate_django.admin import TollgateAdminMixin

from .models import OwnProject, Project


@admin.register(Project)
class ProjectAdmin(TollgateAdminMixin, admin.ModelAdmin):
    """Staff pick the owner in the form: the row gate is checked while validating."""

    fields = ["owner", "name"]


@admin.register(OwnProject)
class OwnProjectAdmin(TollgateAdminMixin, admin.ModelAdmin):
    """The owner is the staff user, set in save_model after validation: the block comes from the save."""

    fields = ["name"]

    def save_model(self, request, obj, form, change):
        obj.owner = request.user
        super().save_model(request, obj, form, change)
