from django.db import models

from task_ferry.models import Job


class ExportJob(Job):
    """The 0.1.1 README's example model."""

    table_id = models.IntegerField()
    output_path = models.CharField(max_length=50, blank=True)

    class Meta:
        app_label = "drfapp"


class StepJob(Job):
    """Advances ``steps`` times, sleeping ``step_sleep`` seconds before each step; fails with
    ``fail_with`` at the end if it is set."""

    steps = models.PositiveIntegerField(default=5)
    step_sleep = models.FloatField(default=0.0)
    fail_with = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        app_label = "drfapp"
