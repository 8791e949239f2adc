# Depends only on task_ferry 0001_initial, which both 0.1.1 and core ship under that name.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [("task_ferry", "0001_initial")]
    operations = [
        migrations.CreateModel(
            name="BenchJob",
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
                ("increments", models.PositiveIntegerField(default=100_000)),
                ("levels", models.PositiveSmallIntegerField(default=0)),
            ],
            bases=("task_ferry.job",),
        ),
    ]
