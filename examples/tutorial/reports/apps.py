from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"

    def ready(self):
        from task_ferry.registry import job_type_registry

        from .job_types import ReportJobType

        job_type_registry.register(ReportJobType())
