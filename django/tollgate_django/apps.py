from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created


class TollgateConfig(AppConfig):
    name = "tollgate_django"
    label = "tollgate"
    verbose_name = "tollgate"

    def ready(self):
        # TG402 from any query (a row gate's trigger, tollgate.require in raw
        # SQL) raises QuotaExceeded; TOLLGATE_TRANSLATE_ERRORS = False turns it off.
        if getattr(settings, "TOLLGATE_TRANSLATE_ERRORS", True):
            from .db import _on_connection_created

            connection_created.connect(_on_connection_created, dispatch_uid="tollgate_django.translate_errors")
