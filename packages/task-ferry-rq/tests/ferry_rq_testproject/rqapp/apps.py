from django.apps import AppConfig


class RQAppConfig(AppConfig):
    name = "ferry_rq_testproject.rqapp"
    label = "rqapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from task_ferry.registry import job_type_registry

        from .job_types import ProbeJobType

        job_type_registry.register(ProbeJobType())
