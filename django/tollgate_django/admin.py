"""The Django admin: a row gate's block is a form error, with the staff's input kept.

    from django.contrib import admin
    from tollgate_django.admin import TollgateAdminMixin

    @admin.register(Project)
    class ProjectAdmin(TollgateAdminMixin, admin.ModelAdmin):
        ...

The add and change forms check the row gates of the model's table while
validating (tollgate.check: it counts nothing), like ``RowGateMixin`` on the
model does for every ModelForm. When the save itself is blocked (``save_model``
set the customer after validation, or a concurrent save took the last unit),
the QuotaExceeded rolls the admin's transaction back and the form is shown
again with the feature's message as its error, instead of the customer's 402
upgrade page.

Nothing is registered here: this module only holds the mixin.
"""

from django.core.exceptions import ValidationError
from django.db import DatabaseError

from .errors import QuotaExceeded, translate
from .models import RowGateMixin, row_gate_errors


def _blocked_message(err):
    return err.upgrade_message or "You have reached the limit of %s." % (err.feature or "this feature")


def row_gate_form(form_class, blocked=None):
    """form_class, validating the row gates of its model (and showing blocked, a QuotaExceeded, as its error)."""

    class RowGateForm(form_class):
        def _post_clean(self):
            super()._post_clean()
            if blocked is not None:
                self.add_error(None, ValidationError(_blocked_message(blocked), code="quota_exceeded"))
                return
            if self.errors or isinstance(self.instance, RowGateMixin):  # the model's clean() checked already
                return
            for error in row_gate_errors(self.instance):
                self.add_error(None, error)

    RowGateForm.__name__ = RowGateForm.__qualname__ = form_class.__name__
    return RowGateForm


class TollgateAdminMixin:
    """For a ModelAdmin whose model's table has a row gate: blocks become form errors, not a 402 page."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return row_gate_form(form, getattr(request, "_tollgate_blocked_save", None))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DatabaseError as exc:
            err = translate(exc)
            if not isinstance(err, QuotaExceeded) or request.method != "POST" or \
                    getattr(request, "_tollgate_blocked_save", None) is not None:
                raise
            # The save was blocked and rolled back with the admin's transaction: show the same POST again,
            # with the block as the form's error (get_form), so nothing the staff typed is lost.
            request._tollgate_blocked_save = err
            return super().changeform_view(request, object_id, form_url, extra_context)
