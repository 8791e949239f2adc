from django.db import models

from task_ferry.models import Job


class ReportJob(Job):
    regions = models.PositiveIntegerField(default=4)
    rows_per_region = models.PositiveIntegerField(default=250)
