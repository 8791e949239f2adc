from django.apps import AppConfig


class ChaosConfig(AppConfig):
    name = "ferry_root_testproject.chaos"
    label = "ferry_chaos"
    verbose_name = "task-ferry failure tests"

    def ready(self) -> None:
        from task_ferry.registry import job_type_registry

        from .job_types import ALL

        for job_type in ALL:
            job_type_registry.register(job_type())
