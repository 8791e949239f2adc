from django.apps import AppConfig


class DramatiqAppConfig(AppConfig):
    name = "ferry_dramatiq_testproject.dramatiqapp"
    label = "dramatiqapp"

    def ready(self) -> None:
        from task_ferry.registry import job_type_registry

        from .job_types import RoutedJobType

        job_type_registry.register(RoutedJobType())
