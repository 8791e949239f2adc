from django.db import models

from task_ferry.models import Job


class ProbeJob(Job):
    """A job that reports, in the database, where and how it ran (see ``ProbeJobType``).

    ``pid`` is the process running the body, ``rq_job_id`` / ``rq_queue`` the RQ job
    it ran as, ``beats`` counts the body's heartbeats, so a test sees from outside
    when it stops."""

    seconds = models.FloatField(default=0.0)
    pid = models.IntegerField(null=True)
    rq_job_id = models.CharField(max_length=100, blank=True, default="")
    rq_queue = models.CharField(max_length=100, blank=True, default="")
    beats = models.PositiveIntegerField(default=0)
    body_runs = models.PositiveIntegerField(default=0)

    class Meta:
        app_label = "rqapp"
