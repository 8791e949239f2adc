from django.apps import AppConfig


class TaskFerryCeleryConfig(AppConfig):
    name = "task_ferry_celery"
    verbose_name = "Task Ferry: Celery"

    def ready(self) -> None:
        # Registers the task and the kill command in every process that sets up Django,
        # workers included, whether or not the project's Celery app autodiscovers tasks.
        from . import tasks  # noqa: F401
