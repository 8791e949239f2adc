from django.apps import AppConfig


class TaskFerryRQConfig(AppConfig):
    """Installed only for the ``ferry_rqworker`` management command; the executor works without it."""

    name = "task_ferry_rq"
    verbose_name = "Task Ferry: RQ"
