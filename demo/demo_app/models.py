from django.db import models

from task_ferry.models import Job


class ReportJob(Job):
    """The demo's job type: a report over a few regions (see ``job_types.ReportJobType``)."""

    regions = models.PositiveSmallIntegerField(default=3)
    seconds = models.FloatField(default=6.0)
    fail_first_attempt = models.BooleanField(default=False)
