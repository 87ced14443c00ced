"""Row gates seen from Django: the form error instead of the 402 page.

A row gate (``tollgate.attach_row_gate`` in a migration) raises QuotaExceeded
when a row is saved. A form that saves such a row (the admin, any ModelForm)
should say so next to the input instead: ``RowGateMixin`` on the model asks
tollgate in ``Model.clean()`` (which every ModelForm runs while validating)
whether the row would pass each row gate of its table, and raises a
ValidationError with the feature's message when not::

    class Project(RowGateMixin, models.Model):
        owner = models.ForeignKey(User, on_delete=models.CASCADE)

The check reads (``tollgate.check``), it never counts: the trigger still
counts when the row is saved, and still blocks a save that a concurrent one
made over the limit (``tollgate_django.admin.TollgateAdminMixin`` turns that
into a form error too).

This module has no models of its own: it creates no table.
"""

import threading

from django.core.exceptions import ValidationError
from django.db import connections, router

from .db import check

_gates_lock = threading.Lock()
_gates_cache = {}  # (alias, table) -> [(column, feature)]


def clear_row_gates_cache():
    with _gates_lock:
        _gates_cache.clear()


def row_gates(model, using=None):
    """The row gates on model's table: [(customer column, feature)], read from PostgreSQL once per process."""
    alias = using or router.db_for_write(model)
    table = model._meta.db_table
    key = (alias, table)
    with _gates_lock:
        hit = _gates_cache.get(key)
    if hit is not None:
        return hit
    connection = connections[alias]
    with connection.cursor() as cursor:
        # tollgate.attach_row_gate's triggers: a function of schema tollgate with the arguments
        # (customer column, feature)
        cursor.execute(
            "SELECT t.tgargs FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
            "WHERE t.tgrelid = to_regclass(%s) AND n.nspname = 'tollgate' AND t.tgnargs = 2 "
            "ORDER BY t.tgname", [connection.ops.quote_name(table)])
        gates = []
        for (args,) in cursor.fetchall():
            column, feature = bytes(args).decode().split("\x00")[:2]
            gates.append((column, feature))
    with _gates_lock:
        _gates_cache[key] = gates
    return gates


def _customer_value(instance, column):
    for field in instance._meta.concrete_fields:
        if field.column == column:
            value = getattr(instance, field.attname)
            return None if value is None else str(value)
    return None


def row_gate_errors(instance, using=None):
    """The ValidationErrors saving instance would meet at its table's row gates (tollgate.check, counts nothing).

    A new row is checked for its customer; an existing one only when its
    customer column changed (the gate moves the count to the new customer).
    """
    model = type(instance)
    alias = using or instance._state.db or router.db_for_write(model, instance=instance)
    gates = row_gates(model, alias)
    if not gates:
        return []
    old = None
    if not instance._state.adding and instance.pk is not None:
        old = model._base_manager.using(alias).filter(pk=instance.pk).first()
    errors = []
    for column, feature in gates:
        customer = _customer_value(instance, column)
        if customer is None or customer == "":
            continue
        if old is not None and _customer_value(old, column) == customer:
            continue
        verdict = check(customer, feature, using=alias)
        if not verdict.allowed:
            errors.append(ValidationError(verdict.message or "You have reached the limit of %s." % feature,
                                          code="quota_exceeded", params={"feature": feature}))
    return errors


class RowGateMixin:
    """Validates a model's row gates in ``clean()``: a ModelForm (the admin too) shows the block as a form error."""

    def clean(self):
        super().clean()
        errors = row_gate_errors(self)
        if errors:
            raise ValidationError(errors)
