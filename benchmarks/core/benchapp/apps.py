from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from task_ferry.registry import job_type_registry

        from .jobs import BenchJobType

        job_type_registry.register(BenchJobType())
