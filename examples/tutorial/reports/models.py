from django.db import models

from task_ferry.models import Job


class ReportJob(Job):
    rows = models.PositiveIntegerField()
    output = models.TextField(blank=True)
