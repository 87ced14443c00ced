# Gates Project rows per customer in PostgreSQL: the 4th project of a free
# customer raises SQLSTATE TG402 (QuotaExceeded in Django), whoever inserts it.
# The customer is owner_id, the user's pk: the same key @gate uses by default.
# The feature "projects" (period lifetime) must exist before this runs:
# `tollgate apply` first, then `manage.py migrate`. Migrating back to 0001 detaches the gate
# (tollgate.detach_row_gate); migrating forward again attaches it and recounts the rows there.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("demo", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="SELECT tollgate.attach_row_gate('demo_project', 'owner_id', 'projects')",
            reverse_sql="SELECT tollgate.detach_row_gate('demo_project', 'projects')",
        ),
    ]
