from django.db import models

from task_ferry.models import Job


class BenchJob(Job):
    """A job subclass (multi-table inheritance), as real job types are."""

    increments = models.PositiveIntegerField(default=100_000)
    #: 0 = increments on the root; N = increments at the leaves of N nested child levels.
    levels = models.PositiveSmallIntegerField(default=0)

    class Meta:
        app_label = "benchapp"
