from django.apps import AppConfig


class TaskFerryDrfConfig(AppConfig):
    name = "task_ferry_drf"
    verbose_name = "Task Ferry REST API"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
