from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="SELECT tollgate.attach_row_gate('notes_note', 'owner_id', 'notes')",
            reverse_sql="SELECT tollgate.detach_row_gate('notes_note', 'notes')",
        ),
    ]
