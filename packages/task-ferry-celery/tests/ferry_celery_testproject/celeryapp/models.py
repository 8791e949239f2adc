from django.db import models

from task_ferry.models import Job


class StubbornJob(Job):
    """A job that ignores both cancellation and SIGTERM (see ``StubbornJobType``).

    ``pid`` is the process running the body; ``beats`` counts, in the database, the
    body's heartbeats, so a test sees from outside when it stops."""

    seconds = models.FloatField(default=30.0)
    pid = models.IntegerField(null=True)
    beats = models.PositiveIntegerField(default=0)
    body_runs = models.PositiveIntegerField(default=0)

    class Meta:
        app_label = "celeryapp"
