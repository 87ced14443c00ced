from django.conf import settings
from django.db import models

from tollgate_django.models import RowGateMixin


class Project(models.Model):
    """At most 3 per customer on the free plan: a row gate (migration 0002) counts them in PostgreSQL."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=100)


class GatedProject(RowGateMixin, Project):
    """The same rows, validated against their row gate in clean(): a ModelForm shows the block as its error."""

    class Meta:
        proxy = True


class OwnProject(Project):
    """The same rows, in an admin that sets the owner in save_model (after the form was validated)."""

    class Meta:
        proxy = True
