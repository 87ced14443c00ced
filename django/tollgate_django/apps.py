from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate, pre_migrate

from .conf import tollgate_settings


class TollgateConfig(AppConfig):
    name = "tollgate_django"
    label = "tollgate"
    verbose_name = "tollgate"

    def ready(self):
        from . import checks  # noqa: F401 (registers the system checks)
        from .drf import install_route_hook
        from .testing import _post_migrate, _pre_migrate

        # TG402 from any query (a row gate's trigger, tollgate.require in raw
        # SQL) raises QuotaExceeded; TOLLGATE_TRANSLATE_ERRORS = False turns it off.
        if tollgate_settings.TRANSLATE_ERRORS:
            from .db import _on_connection_created

            connection_created.connect(_on_connection_created, dispatch_uid="tollgate_django.translate_errors")
        # routes of DRF views are gated after DRF authenticates (drf.py); a no-op without DRF
        install_route_hook()
        # TollgateTestRunner: tollgate in the test database before the app's migrations, reset after flushes
        pre_migrate.connect(_pre_migrate, sender=self, dispatch_uid="tollgate_django.testing.pre_migrate")
        post_migrate.connect(_post_migrate, sender=self, dispatch_uid="tollgate_django.testing.post_migrate")
