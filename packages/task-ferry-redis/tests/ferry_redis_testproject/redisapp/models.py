from django.db import models

from task_ferry.models import Job


class StepJob(Job):
    """``steps`` increments, ``step_sleep`` seconds apart (see ``StepJobType``)."""

    steps = models.PositiveIntegerField(default=10)
    step_sleep = models.FloatField(default=0.0)

    class Meta:
        app_label = "redisapp"
