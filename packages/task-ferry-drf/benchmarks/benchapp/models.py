from django.db import models

from task_ferry.models import Job


class ExportJob(Job):
    """The 0.1.1 README's example model: a subclass table, as real projects have."""

    table_id = models.IntegerField()
    output_path = models.CharField(max_length=500, blank=True)

    class Meta:
        app_label = "benchapp"
