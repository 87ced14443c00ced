from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("demo", "0002_project_row_gate")]

    operations = [
        migrations.CreateModel(name="GatedProject", fields=[], options={"proxy": True},
                               bases=("demo.project",)),
        migrations.CreateModel(name="OwnProject", fields=[], options={"proxy": True}, bases=("demo.project",)),
    ]
