from django.apps import AppConfig


class DemoAppConfig(AppConfig):
    name = "demo_app"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from task_ferry.registry import job_type_registry

        from .job_types import ReportJobType

        job_type_registry.register(ReportJobType())
