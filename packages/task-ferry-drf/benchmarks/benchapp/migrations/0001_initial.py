import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    # 0002 exists in 0.1.1 and in core with the same schema: the table this subclass points at.
    dependencies = [("task_ferry", "0002_add_ingestion_job")]

    operations = [
        migrations.CreateModel(
            name="ExportJob",
            fields=[
                (
                    "job_ptr",
                    models.OneToOneField(
                        auto_created=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        parent_link=True,
                        primary_key=True,
                        serialize=False,
                        to="task_ferry.job",
                    ),
                ),
                ("table_id", models.IntegerField()),
                ("output_path", models.CharField(blank=True, max_length=500)),
            ],
            bases=("task_ferry.job",),
        ),
    ]
