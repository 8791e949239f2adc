from django.apps import AppConfig


class DrfAppConfig(AppConfig):
    name = "ferry_drf_testproject.drfapp"
    label = "drfapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from task_ferry.registry import job_type_registry

        from .job_types import ALL

        for job_type in ALL:
            job_type_registry.register(job_type())
