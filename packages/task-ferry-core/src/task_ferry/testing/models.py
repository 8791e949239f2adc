from django.db import models

from task_ferry.models import Job


class ConformanceJob(Job):
    """The job the conformance kit dispatches. Its fields steer what ``run`` does,
    and ``body_runs`` counts, in the database, how often the body started."""

    steps = models.PositiveIntegerField(default=1)
    step_sleep = models.FloatField(default=0.0)
    fail_with = models.CharField(max_length=200, blank=True, default="")
    body_runs = models.PositiveIntegerField(default=0)

    class Meta:
        app_label = "task_ferry_testing"
