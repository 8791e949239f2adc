from django.apps import AppConfig


class FerryTestingConfig(AppConfig):
    name = "task_ferry.testing"
    label = "task_ferry_testing"
    verbose_name = "Task Ferry conformance kit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from task_ferry.registry import job_type_registry

        from .jobs import ConformanceJobType

        job_type_registry.register(ConformanceJobType())
