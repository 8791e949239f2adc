from django.apps import AppConfig


class RedisAppConfig(AppConfig):
    name = "ferry_redis_testproject.redisapp"
    label = "redisapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from task_ferry.registry import job_type_registry

        from .job_types import StepJobType

        job_type_registry.register(StepJobType())
