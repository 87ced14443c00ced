from django.conf import settings
from django.db import models


class Project(models.Model):
    """At most 3 per customer on the free plan: a row gate (migration 0002) counts them in PostgreSQL."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=100)
