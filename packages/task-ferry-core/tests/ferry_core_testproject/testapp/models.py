from django.db import models

from task_ferry.models import Job


class ExportJob(Job):
    """The model of the 0.1.1 README's example."""

    table_id = models.IntegerField()
    output_path = models.CharField(max_length=500, blank=True)

    class Meta:
        app_label = "testapp"


class ScriptedJob(Job):
    """A job whose behaviour is steered by its fields (for lifecycle and race tests)."""

    steps = models.PositiveIntegerField(default=10)
    step_sleep = models.FloatField(default=0.0)
    fail_with = models.CharField(max_length=200, blank=True, default="")
    body_runs = models.PositiveIntegerField(default=0)
    hook_calls = models.JSONField(default=list, blank=True)

    class Meta:
        app_label = "testapp"
