from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from task_ferry.registry import JobType, job_type_registry

        from .models import ExportJob

        class ExportJobType(JobType):
            """The 0.1.1 README's example type (the same code runs against 0.1.1 and ours)."""

            type = "export_table"
            model_class = ExportJob

            def run(self, job, progress):
                progress.increment(100)

        job_type_registry.register(ExportJobType())
