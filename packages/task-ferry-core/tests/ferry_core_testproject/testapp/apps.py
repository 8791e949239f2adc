from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "ferry_core_testproject.testapp"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from task_ferry.registry import job_type_registry

        from . import job_types

        for job_type in job_types.ALL:
            job_type_registry.register(job_type())
