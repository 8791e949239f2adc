from django.apps import AppConfig


class TaskFerryConfig(AppConfig):
    name = "task_ferry"
    verbose_name = "Task Ferry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Plugins are imported on first use, not here; misconfiguration is
        # reported by the system checks registered below.
        from . import checks, conf  # noqa: F401
